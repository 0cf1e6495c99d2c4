/**
 * Configuration: every environment variable aftercall reads, validated by one zod schema
 * at start. A bad value stops the process with a message naming the variable and what
 * was expected. The per-type variables are generated from the task catalog.
 *
 * Durations accept `500ms`, `15s`, `30m`, `2h`, `1d`, or a number of milliseconds.
 */
import { z } from 'zod';
import { allTaskDefinitions, MAX_ATTEMPTS, type TaskOverrides, type TaskType } from '../tasks/catalog.js';
import { formatDuration, parseDuration, SECOND } from '../contract/time.js';
import { E164 } from '../contract/conversation-outcome.js';
import {
  DEFAULT_DEDUPE_WINDOW_MS,
  DEFAULT_PREFIX,
  DEFAULT_PRODUCER_TIMEOUT_MS,
  DEFAULT_REDIS_URL,
  DEFAULT_RETRY_POLICY,
  DEFAULT_SWEEP_BATCH_SIZE,
  PREFIX_PATTERN,
  type RetryPolicy,
} from './defaults.js';
import { ConfigError } from '../contract/validation-error.js';
import { channelVariable, supportedChannels, type ChannelSetting } from '../delivery/routing.js';

export { ConfigError };

export interface AftercallConfig {
  redisUrl: string;
  prefix: string;
  dedupeWindowMs: number;
  producerTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  worker: {
    concurrency: number;
    shutdownGraceMs: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
  };
  retry: RetryPolicy;
  sweeper: { enabled: boolean; intervalMs: number; batchSize: number };
  webhook: { secret: string | undefined; timeoutMs: number; urls: Record<TaskType, string | undefined> };
  resend: { apiKey: string | undefined; baseUrl: string | undefined; from: string | undefined };
  twilio: {
    accountSid: string | undefined;
    authToken: string | undefined;
    from: string | undefined;
    apiBase: string | undefined;
  };
  channels: Record<TaskType, ChannelSetting>;
  /** Port of /metrics, /healthz and /readyz in worker processes; 0 switches the server off. */
  metricsPort: number;
  tasks: TaskOverrides;
}

/** One line per variable, for --help and the README. */
export interface VariableDoc {
  name: string;
  default: string;
  description: string;
}

const upper = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
export const taskVariable = (type: string, setting: string) => `TASK_${type.toUpperCase()}_${upper(setting)}`;

const duration = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const value = parseDuration(text);
      if (value === undefined) {
        ctx.addIssue({ code: 'custom', message: 'expected a duration such as 500ms, 15s, 30m, 2h or 1d' });
        return z.NEVER;
      }
      return value;
    });

const integer = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const value = Number(text);
      if (!Number.isInteger(value) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `expected an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return value;
    });

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];
const flag = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const lower = text.toLowerCase();
      if (TRUE.includes(lower)) return true;
      if (FALSE.includes(lower)) return false;
      ctx.addIssue({ code: 'custom', message: 'expected true or false' });
      return z.NEVER;
    });

const httpUrl = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined || text === '') return undefined;
    try {
      const url = new URL(text);
      if (url.protocol === 'http:' || url.protocol === 'https:') return text;
    } catch {
      // reported below
    }
    ctx.addIssue({ code: 'custom', message: 'expected an http:// or https:// URL' });
    return z.NEVER;
  });

const redisUrl = z
  .string()
  .optional()
  .transform((text, ctx) => {
    const value = text || DEFAULT_REDIS_URL;
    try {
      const url = new URL(value);
      if ((url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname) return value;
    } catch {
      // reported below
    }
    ctx.addIssue({
      code: 'custom',
      message: 'expected a redis:// or rediss:// URL, e.g. redis://user:password@host:6379/0',
    });
    return z.NEVER;
  });

/** A Standard Webhooks secret as workers accept it: `whsec_` and at least 16 bytes in base64. */
export function isWebhookSecret(text: string): boolean {
  const key = text.startsWith('whsec_') ? text.slice('whsec_'.length) : '';
  return key !== '' && /^[A-Za-z0-9+/]+={0,2}$/.test(key) && Buffer.from(key, 'base64').length >= 16;
}

const fixedVariables = {
  REDIS_URL: redisUrl,
  AFTERCALL_PREFIX: z
    .string()
    .optional()
    .transform((text, ctx) => {
      const value = text || DEFAULT_PREFIX;
      if (PREFIX_PATTERN.test(value)) return value;
      ctx.addIssue({ code: 'custom', message: 'expected letters, digits, _ . : - (no braces, at most 64 characters)' });
      return z.NEVER;
    }),
  DEDUPE_WINDOW: duration(DEFAULT_DEDUPE_WINDOW_MS),
  PRODUCER_TIMEOUT: duration(DEFAULT_PRODUCER_TIMEOUT_MS),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
  WORKER_CONCURRENCY: integer(10, 1, 1000),
  SHUTDOWN_GRACE: duration(25 * SECOND),
  LOCK_DURATION: duration(30 * SECOND),
  STALLED_INTERVAL: duration(30 * SECOND),
  MAX_STALLED_COUNT: integer(2, 0, 100),
  RETRY_BASE_DELAY: duration(DEFAULT_RETRY_POLICY.baseDelayMs),
  RETRY_MAX_DELAY: duration(DEFAULT_RETRY_POLICY.maxDelayMs),
  RETRY_JITTER: duration(DEFAULT_RETRY_POLICY.jitterMs),
  SWEEPER_ENABLED: flag(true),
  SWEEP_INTERVAL: duration(15 * SECOND),
  SWEEP_BATCH_SIZE: integer(DEFAULT_SWEEP_BATCH_SIZE, 1, 10_000),
  WEBHOOK_SECRET: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return undefined;
      if (isWebhookSecret(text)) return text;
      ctx.addIssue({
        code: 'custom',
        message: 'expected a Standard Webhooks secret: whsec_ followed by at least 16 bytes in base64',
      });
      return z.NEVER;
    }),
  WEBHOOK_TIMEOUT: duration(10 * SECOND),
  RESEND_API_KEY: z
    .string()
    .optional()
    .transform((text) => text || undefined),
  RESEND_BASE_URL: httpUrl,
  EMAIL_FROM: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return undefined;
      if (/^[^<>@\s]+@[^<>@\s]+$/.test(text) || /^[^<>]*<[^<>@\s]+@[^<>@\s]+>$/.test(text)) return text;
      ctx.addIssue({
        code: 'custom',
        message: 'expected a sender such as bookings@acme.example or "Acme <bookings@acme.example>"',
      });
      return z.NEVER;
    }),
  TWILIO_ACCOUNT_SID: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return undefined;
      if (/^AC[0-9a-fA-F]{32}$/.test(text)) return text;
      ctx.addIssue({ code: 'custom', message: 'expected a Twilio account SID: AC followed by 32 hex digits' });
      return z.NEVER;
    }),
  TWILIO_AUTH_TOKEN: z
    .string()
    .optional()
    .transform((text) => text || undefined),
  TWILIO_FROM: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return undefined;
      if (E164.test(text) || /^MG[0-9a-fA-F]{32}$/.test(text)) return text;
      ctx.addIssue({
        code: 'custom',
        message: 'expected an E.164 number (+14155550100) or a Messaging Service SID (MG...)',
      });
      return z.NEVER;
    }),
  TWILIO_API_BASE: httpUrl,
  METRICS_PORT: integer(9464, 0, 65_535),
};

const fixedDocs: Record<keyof typeof fixedVariables, [string, string]> = {
  REDIS_URL: ['redis://127.0.0.1:6379', 'Redis to use (redis:// or rediss://, with user and password when needed)'],
  AFTERCALL_PREFIX: [DEFAULT_PREFIX, 'prefix of every Redis key; producers and workers must agree'],
  DEDUPE_WINDOW: ['24h', 'how long a completed task still absorbs a repeated outcome'],
  PRODUCER_TIMEOUT: ['2s', 'deadline of one conversationEnded call when Redis is slow or away'],
  LOG_LEVEL: ['info', 'fatal, error, warn, info, debug, trace or silent'],
  WORKER_CONCURRENCY: ['10', 'jobs processed at once per queue in one worker process'],
  SHUTDOWN_GRACE: ['25s', 'on SIGTERM, how long active jobs may take to finish'],
  LOCK_DURATION: ['30s', "job lock; a crashed worker's jobs are picked up again after it lapses"],
  STALLED_INTERVAL: ['30s', 'how often workers look for jobs of crashed workers'],
  MAX_STALLED_COUNT: ['2', 'how often a job may crash its worker before it is dead-lettered'],
  RETRY_BASE_DELAY: ['2s', 'first retry delay; doubles with each attempt'],
  RETRY_MAX_DELAY: ['60s', 'cap of the retry delay (before jitter)'],
  RETRY_JITTER: ['1s', 'up to this much random time added to each retry delay'],
  SWEEPER_ENABLED: ['true', 'whether this worker process takes part in the expiry sweep'],
  SWEEP_INTERVAL: ['15s', 'how often the fleet sweeps expired jobs into the dead-letter queue'],
  SWEEP_BATCH_SIZE: [
    String(DEFAULT_SWEEP_BATCH_SIZE),
    'expired jobs handled per Redis call during a sweep (each call blocks Redis while it runs)',
  ],
  WEBHOOK_SECRET: ['(none)', 'Standard Webhooks signing secret (whsec_...); required when a webhook is used'],
  WEBHOOK_TIMEOUT: ['10s', 'timeout of one provider request (webhook, Resend, Twilio)'],
  RESEND_API_KEY: ['(none)', 'Resend API key; when set, e-mails go through Resend (see CHANNEL_<TYPE>)'],
  RESEND_BASE_URL: ["(the SDK's)", 'Resend API base URL (a sandbox or a regional endpoint)'],
  EMAIL_FROM: ['(none)', 'sender of e-mails sent through Resend; required with RESEND_API_KEY'],
  TWILIO_ACCOUNT_SID: ['(none)', 'Twilio account SID (AC...); with the token and sender, SMS go through Twilio'],
  TWILIO_AUTH_TOKEN: ['(none)', 'Twilio auth token'],
  TWILIO_FROM: ['(none)', 'SMS sender: an E.164 number or a Messaging Service SID (MG...)'],
  TWILIO_API_BASE: ['https://api.twilio.com', 'Twilio API base URL (a sandbox)'],
  METRICS_PORT: ['9464', 'worker port of /metrics, /healthz and /readyz; 0 switches it off'],
};

function taskVariables() {
  const shape: Record<string, z.ZodType> = {};
  for (const definition of allTaskDefinitions()) {
    shape[definition.webhookUrlVariable] = httpUrl;
    shape[channelVariable(definition.type)] = z
      .enum(['auto', ...supportedChannels(definition.type)] as [string, ...string[]], {
        error: `expected one of auto, ${supportedChannels(definition.type).join(', ')}`,
      })
      .optional()
      .default('auto');
    shape[taskVariable(definition.type, 'enabled')] = flag(true);
    shape[taskVariable(definition.type, 'attempts')] = integer(definition.defaults.attempts, 1, MAX_ATTEMPTS);
    for (const [setting, value] of Object.entries(definition.defaults.settings)) {
      shape[taskVariable(definition.type, setting)] = duration(value);
    }
  }
  return shape;
}

export function configVariables(): VariableDoc[] {
  const docs: VariableDoc[] = Object.entries(fixedDocs).map(([name, [fallback, description]]) => ({
    name,
    default: fallback,
    description,
  }));
  for (const definition of allTaskDefinitions()) {
    docs.push({
      name: definition.webhookUrlVariable,
      default: '(none)',
      description: `webhook URL of ${definition.type} deliveries`,
    });
    docs.push({
      name: channelVariable(definition.type),
      default: 'auto',
      description: `channel of ${definition.type}: auto, ${supportedChannels(definition.type).join(', ')}`,
    });
    docs.push({
      name: taskVariable(definition.type, 'enabled'),
      default: 'true',
      description: `false switches ${definition.type} off`,
    });
    docs.push({
      name: taskVariable(definition.type, 'attempts'),
      default: String(definition.defaults.attempts),
      description: `attempts of ${definition.type}`,
    });
    for (const [setting, value] of Object.entries(definition.defaults.settings)) {
      const description = (definition.settingDescriptions as Record<string, string>)[setting] ?? setting;
      docs.push({
        name: taskVariable(definition.type, setting),
        default: formatDuration(value),
        description: `${definition.type}: ${description}`,
      });
    }
  }
  return docs;
}

/** Reads and validates the environment. Throws ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AftercallConfig {
  const schema = z.object({ ...fixedVariables, ...taskVariables() });
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({
        path: String(issue.path[0] ?? '(environment)'),
        message:
          issue.code === 'invalid_value' ? `expected one of ${(issue.values as unknown[]).join(', ')}` : issue.message,
      })),
    );
  }
  const values = parsed.data as Record<string, unknown>;
  const tasks: TaskOverrides = {};
  const urls = {} as Record<TaskType, string | undefined>;
  const channels = {} as Record<TaskType, ChannelSetting>;
  for (const definition of allTaskDefinitions()) {
    urls[definition.type] = values[definition.webhookUrlVariable] as string | undefined;
    channels[definition.type] = values[channelVariable(definition.type)] as ChannelSetting;
    tasks[definition.type] = {
      enabled: values[taskVariable(definition.type, 'enabled')] as boolean,
      attempts: values[taskVariable(definition.type, 'attempts')] as number,
      settings: Object.fromEntries(
        Object.keys(definition.defaults.settings).map((setting) => [
          setting,
          values[taskVariable(definition.type, setting)] as number,
        ]),
      ),
    };
  }
  const v = parsed.data;
  return {
    redisUrl: v.REDIS_URL,
    prefix: v.AFTERCALL_PREFIX,
    dedupeWindowMs: v.DEDUPE_WINDOW,
    producerTimeoutMs: v.PRODUCER_TIMEOUT,
    logLevel: v.LOG_LEVEL,
    worker: {
      concurrency: v.WORKER_CONCURRENCY,
      shutdownGraceMs: v.SHUTDOWN_GRACE,
      lockDurationMs: v.LOCK_DURATION,
      stalledIntervalMs: v.STALLED_INTERVAL,
      maxStalledCount: v.MAX_STALLED_COUNT,
    },
    retry: { baseDelayMs: v.RETRY_BASE_DELAY, maxDelayMs: v.RETRY_MAX_DELAY, jitterMs: v.RETRY_JITTER },
    sweeper: { enabled: v.SWEEPER_ENABLED, intervalMs: v.SWEEP_INTERVAL, batchSize: v.SWEEP_BATCH_SIZE },
    webhook: { secret: v.WEBHOOK_SECRET, timeoutMs: v.WEBHOOK_TIMEOUT, urls },
    resend: { apiKey: v.RESEND_API_KEY, baseUrl: v.RESEND_BASE_URL, from: v.EMAIL_FROM },
    twilio: {
      accountSid: v.TWILIO_ACCOUNT_SID,
      authToken: v.TWILIO_AUTH_TOKEN,
      from: v.TWILIO_FROM,
      apiBase: v.TWILIO_API_BASE,
    },
    channels,
    metricsPort: v.METRICS_PORT,
    tasks,
  };
}
