/**
 * Channels: which provider delivers each task type.
 *
 * A type is served by Resend (e-mail), Twilio (SMS) or the signed webhook, as set by
 * `CHANNEL_<TYPE>` (`auto`, `webhook`, `resend`, `twilio`; only the channels a type has a
 * message for are allowed). `auto`, the default:
 *   - types with an e-mail (send_email): Resend when RESEND_API_KEY is set, else webhook;
 *   - types with an SMS and an e-mail (reminders, surveys): Twilio when it is configured
 *     and the customer has a phone; else Resend when it is configured and the customer has
 *     an e-mail address; else the webhook;
 *   - other types (CRM, ticket, callback): the webhook.
 * A channel that is chosen but not configured stops the worker at start, naming the
 * variable; so does a webhook that a type may fall back to without a URL. A task that
 * none of its channels can reach (an SMS-only type and a customer without a phone) is
 * dead-lettered as terminal, with the reason.
 */
import type { AftercallConfig } from '../config/environment.js';
import type { RedisClient } from '../redis/scripts.js';
import { taskDefinition, type TaskType } from '../tasks/catalog.js';
import { ConfigError, type FieldIssue } from '../contract/validation-error.js';
import { TerminalDeliveryError } from './errors.js';
import type { DeliveryPort } from '../contract/delivery-port.js';
import type { ProviderObserver } from './observer.js';
import { createResendDelivery, type EmailSender } from './providers/resend/resend.js';
import { createTwilioDelivery, type SmsSender } from './providers/twilio/twilio.js';
import { createWebhookDelivery, WEBHOOK_PROVIDER } from './providers/webhook/webhook.js';

export const CHANNELS = ['webhook', 'resend', 'twilio'] as const;
export type Channel = (typeof CHANNELS)[number];
export type ChannelSetting = 'auto' | Channel;

export const channelVariable = (type: string) => `CHANNEL_${type.toUpperCase()}`;

/** The channels a type has messages for (the webhook always). */
export function supportedChannels(type: TaskType): Channel[] {
  const messages = taskDefinition(type).messages;
  return [
    'webhook',
    ...(messages?.email ? (['resend'] as const) : []),
    ...(messages?.sms ? (['twilio'] as const) : []),
  ];
}

const resendReady = (config: AftercallConfig) => !!config.resend.apiKey;
const twilioReady = (config: AftercallConfig) =>
  !!(config.twilio.accountSid || config.twilio.authToken || config.twilio.from);

/** The channels a type tries, in order; throws ConfigError naming each missing variable. */
export function resolveRoutes(
  config: AftercallConfig,
  types: readonly TaskType[],
  overridden: readonly TaskType[] = [],
): Map<TaskType, Channel[]> {
  const issues: FieldIssue[] = [];
  const need = (variable: string, value: unknown, why: string) => {
    if (!value && !issues.some((issue) => issue.path === variable))
      issues.push({ path: variable, message: `required: ${why}` });
  };
  const routes = new Map<TaskType, Channel[]>();
  for (const type of types) {
    if (overridden.includes(type)) continue;
    const setting = config.channels[type];
    const supported = supportedChannels(type);
    let order: Channel[];
    if (setting === 'auto') {
      order = [
        ...(supported.includes('twilio') && twilioReady(config) ? (['twilio'] as const) : []),
        ...(supported.includes('resend') && resendReady(config) ? (['resend'] as const) : []),
      ];
      // The webhook closes the chain when it has a URL (for customers the providers cannot
      // reach), and is the only channel when no provider is configured.
      if (config.webhook.urls[type] || order.length === 0) order.push('webhook');
    } else {
      order = [setting];
    }
    const why = `${type} is delivered through ${order.join(', then ')} (${channelVariable(type)}=${setting})`;
    for (const channel of order) {
      if (channel === 'resend') {
        need('RESEND_API_KEY', config.resend.apiKey, why);
        need('EMAIL_FROM', config.resend.from, why);
      } else if (channel === 'twilio') {
        need('TWILIO_ACCOUNT_SID', config.twilio.accountSid, why);
        need('TWILIO_AUTH_TOKEN', config.twilio.authToken, why);
        need('TWILIO_FROM', config.twilio.from, why);
      } else {
        const variable = taskDefinition(type).webhookUrlVariable;
        need(
          variable,
          config.webhook.urls[type],
          `${why}; set ${variable}, or switch the type off with TASK_${type.toUpperCase()}_ENABLED=false`,
        );
        need(
          'WEBHOOK_SECRET',
          config.webhook.secret,
          'webhooks are signed (Standard Webhooks); expected whsec_ followed by a base64 key',
        );
      }
    }
    routes.set(type, order);
  }
  if (issues.length) throw new ConfigError(issues);
  return routes;
}

export interface DeliveryRouterOptions {
  config: AftercallConfig;
  types: readonly TaskType[];
  redis: RedisClient;
  observe?: ProviderObserver;
  /** Ports given in place of the configured channels (tests). */
  ports?: Partial<Record<TaskType, DeliveryPort>>;
}

/** One delivery port for the served types, routing each task to its channel. */
export function createDeliveryRouter(options: DeliveryRouterOptions): DeliveryPort {
  const { config, observe } = options;
  const given = options.ports ?? {};
  const routes = resolveRoutes(config, options.types, Object.keys(given) as TaskType[]);
  const used = new Set([...routes.values()].flat());
  const webhook = used.has('webhook')
    ? createWebhookDelivery({
        urls: config.webhook.urls,
        secret: config.webhook.secret!,
        timeoutMs: config.webhook.timeoutMs,
        ...(observe && { observe }),
      })
    : undefined;
  const resend: EmailSender | undefined = used.has('resend')
    ? createResendDelivery({
        apiKey: config.resend.apiKey!,
        from: config.resend.from!,
        timeoutMs: config.webhook.timeoutMs,
        ...(config.resend.baseUrl && { baseUrl: config.resend.baseUrl }),
        ...(observe && { observe }),
      })
    : undefined;
  const twilio: SmsSender | undefined = used.has('twilio')
    ? createTwilioDelivery({
        accountSid: config.twilio.accountSid!,
        authToken: config.twilio.authToken!,
        from: config.twilio.from!,
        timeoutMs: config.webhook.timeoutMs,
        redis: options.redis,
        prefix: config.prefix,
        ...(config.twilio.apiBase && { apiBase: config.twilio.apiBase }),
        ...(observe && { observe }),
      })
    : undefined;

  return {
    provider: 'router',
    async deliver(request, signal) {
      const type = request.type as TaskType;
      const port = given[type];
      if (port) return port.deliver(request, signal);
      const messages = taskDefinition(type).messages;
      const order = routes.get(type) ?? [];
      for (const channel of order) {
        if (channel === 'twilio') {
          const sms = messages?.sms?.(request.payload);
          if (sms) return twilio!.sendSms(sms, request, signal);
        } else if (channel === 'resend') {
          const email = messages?.email?.(request.payload);
          if (email) return resend!.sendEmail(email, request, signal);
        } else {
          return webhook!.deliver(request, signal);
        }
      }
      throw new TerminalDeliveryError(
        `no channel can reach this customer: ${type} goes through ${order.join(', ')} and the customer has ${order.includes('twilio') ? 'no phone number' : ''}${order.length > 1 ? ' and ' : ''}${order.includes('resend') ? 'no e-mail address' : ''}`,
        { provider: order[0] ?? WEBHOOK_PROVIDER },
      );
    },
  };
}
