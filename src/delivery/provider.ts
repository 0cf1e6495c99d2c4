/**
 * What a delivery provider is. Each provider is one folder under providers/ with a
 * `provider.ts` that exports one `DeliveryProvider`, listed once in registry.ts; the
 * configuration, the routing and the docs iterate the registry. Adding a provider touches
 * its own folder and one registry line, nothing else.
 *
 * A provider says:
 * - its name: the channel name in `CHANNEL_<TYPE>` and the `provider` of its receipts;
 * - what it sends: an e-mail or an SMS (a type qualifies when its definition has that
 *   message), or the task's payload (any type: the webhook);
 * - the environment variables it reads, parsed and documented like every other variable;
 * - whether it is configured at all (`auto` routing takes only configured providers) and
 *   which of its variables a type needs (start-up names each missing one);
 * - `create`: the DeliveryPort that delivers through it.
 */
import type { z } from 'zod';
import type { DeliveryPort } from '../contract/delivery-port.js';
import type { RedisClient } from '../redis/scripts.js';
import { taskDefinition, type TaskType } from '../tasks/catalog.js';
import type { ProviderObserver } from './observer.js';
import type { RateLimit } from './rate-limit.js';

export interface ProviderVariable {
  readonly name: string;
  /** Parses the variable's text (undefined when unset). */
  readonly schema: z.ZodType<unknown, string | undefined>;
  /** The default as the docs show it. */
  readonly default: string;
  readonly description: string;
}

/** Parsed variable values by variable name. */
export type VariableValues = Readonly<Record<string, unknown>>;

export interface ProviderContext {
  readonly values: VariableValues;
  /** The types this process serves through the provider. */
  readonly types: readonly TaskType[];
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Timeout of one request to the provider. */
  readonly timeoutMs: number;
  readonly observe?: ProviderObserver;
}

export interface DeliveryProvider {
  readonly name: string;
  readonly sends: 'email' | 'sms' | 'payload';
  readonly description: string;
  variables(): readonly ProviderVariable[];
  /** Whether any of its variables is set: `auto` routing takes only configured providers. */
  configured(values: VariableValues): boolean;
  /** The variables serving `type` needs, each with whether it is set. */
  requires(values: VariableValues, type: TaskType): readonly { variable: string; set: boolean; why?: string }[];
  /**
   * The destination a type's deliveries go to (rate limits, circuits): one per provider
   * account (`resend`, `twilio`), or one per type's URL (`webhook:<type>`). A label-safe
   * name: never a URL or a secret.
   */
  destination(type: TaskType): string;
  /** The configured rate limit of a destination (`<X>_RATE_LIMIT`); undefined: none of ours. */
  rateLimit(values: VariableValues, type: TaskType): RateLimit | undefined;
  create(context: ProviderContext): DeliveryPort;
}

/** Whether a provider can deliver a type: the webhook any, e-mail and SMS providers those with such a message. */
export function providerSupports(provider: DeliveryProvider, type: TaskType): boolean {
  if (provider.sends === 'payload') return true;
  const messages = taskDefinition(type).messages;
  return provider.sends === 'email' ? !!messages?.email : !!messages?.sms;
}
