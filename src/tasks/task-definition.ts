/**
 * What a task type is. Each type is defined once, in its own file in this folder, and
 * listed in catalog.ts; the producer, the workers, the sweeper, the status lookup, the
 * CLI and the configuration all iterate the catalog and never list task types again.
 *
 * A definition says, for one type:
 * - when an outcome creates it (`appliesTo`), and under which idempotency key;
 * - when it runs and when it expires (`runAt`, `expiresAt`), from settings with defaults
 *   that each deployment can change (`TASK_<TYPE>_<SETTING>` variables);
 * - how many attempts it gets;
 * - its payload (built from the outcome) and the payload's schema, which the worker
 *   checks again when it reads the job back from Redis;
 * - the webhook variable that names its destination;
 * - what it says to the customer, for types that reach the customer directly: an e-mail
 *   (sent through Resend) and/or an SMS (through Twilio); which channel serves a type is
 *   configuration (src/providers/channels.ts);
 * - its processor: how the task becomes a delivery through the delivery port.
 */
import type { z } from 'zod';
import type { ConversationOutcome } from '../contract/conversation-outcome.js';
import type { DeliveryPort, DeliveryReceipt, DeliveryRequest } from '../contract/delivery-port.js';
import type { EmailMessage, SmsMessage } from './message.js';

/** Timing settings of a type: durations in milliseconds, by name. */
export type TaskSettings = Record<string, number>;

/**
 * A task whose pending instance belongs to a scope shared across conversations (a
 * reminder belongs to its booking): a later outcome replaces or cancels it.
 */
export interface TaskScope {
  /** The scope an outcome refers to (e.g. the booking id), if any. */
  id(outcome: ConversationOutcome): string | undefined;
  /** What the outcome does to the scope's pending task. */
  action(outcome: ConversationOutcome): 'replace' | 'cancel' | undefined;
}

export interface TaskDefinition<
  Payload = unknown,
  Settings extends TaskSettings = TaskSettings,
  Type extends string = string,
> {
  readonly type: Type;
  readonly description: string;
  /** Environment variable that holds the webhook URL of this type's deliveries. */
  readonly webhookUrlVariable: string;
  readonly defaults: { readonly attempts: number; readonly settings: Settings };
  /** One line per setting, for --help, README and error messages. */
  readonly settingDescriptions: { readonly [K in keyof Settings]: string };
  /** When true, a task that would already be expired is skipped instead of dead-lettered. */
  readonly skipWhenExpired?: boolean;
  readonly scope?: TaskScope;
  readonly payloadSchema: z.ZodType<Payload>;
  /** Messages to the customer; each returns undefined when the customer has no such address. */
  readonly messages?: {
    email?(payload: Payload): EmailMessage | undefined;
    sms?(payload: Payload): SmsMessage | undefined;
  };

  appliesTo(outcome: ConversationOutcome): boolean;
  idempotencyKey(outcome: ConversationOutcome): string;
  buildPayload(outcome: ConversationOutcome): Payload;
  /** Epoch ms at which the task may run; `now` when it can run at once. */
  runAt(outcome: ConversationOutcome, settings: Settings, now: number): number;
  /** Epoch ms after which the task is worthless and must not be delivered. */
  expiresAt(outcome: ConversationOutcome, settings: Settings): number;
  /** The processor: delivers the task through the port chosen for its type. */
  process(request: DeliveryRequest<Payload>, port: DeliveryPort, signal: AbortSignal): Promise<DeliveryReceipt>;
}

/** Identity helper that keeps a definition's payload and settings types. */
export function defineTask<Payload, Settings extends TaskSettings, Type extends string>(
  definition: TaskDefinition<Payload, Settings, Type>,
): TaskDefinition<Payload, Settings, Type> {
  return definition;
}

/** The processor most types use: the payload goes to the port as it is. */
export function deliverPayload<Payload>(
  request: DeliveryRequest<Payload>,
  port: DeliveryPort,
  signal: AbortSignal,
): Promise<DeliveryReceipt> {
  return port.deliver(request, signal);
}
