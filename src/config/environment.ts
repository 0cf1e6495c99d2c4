/**
 * Configuration: every environment variable aftercall reads, validated by one zod schema
 * at start. A bad value stops the process with a message naming the variable and what
 * was expected. The per-type variables are generated from the task catalog.
 *
 * Durations accept `500ms`, `15s`, `30m`, `2h`, `1d`, or a number of milliseconds.
 */
import { z } from 'zod';
import { allTaskDefinitions, MAX_ATTEMPTS, type TaskOverrides, type TaskType } from '../tasks/catalog.js';
import { formatDuration, SECOND } from '../contract/time.js';
import { durationVariable, flagVariable, integerVariable, numberVariable } from '../contract/variables.js';
import { DEFAULT_CIRCUIT, type CircuitSettings } from '../delivery/destination-policy.js';
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
import { PROVIDERS } from '../delivery/registry.js';
import { channelVariable, supportedChannels, type ChannelSetting, type DeliveryConfig } from '../delivery/routing.js';
import type { RedisTarget } from '../redis/connection.js';
import { redisDocs, redisTargetFrom, redisVariables } from './redis-environment.js';

export { ConfigError };

export interface AftercallConfig {
  /** REDIS_URL as given (standalone mode; in sentinel mode the primary's credentials). */
  redisUrl: string;
  /** Where Redis is: standalone, cluster or sentinel, with TLS (redis-environment.ts). */
  redis: RedisTarget;
  /** Replicas a producer waits for (WAIT) before it acknowledges a task; 0: none. */
  waitReplicas: number;
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
  /** Providers' variables (from the provider registry), channels by type, the request timeout. */
  delivery: DeliveryConfig;
  /** When a destination's circuit opens, and how long it stays open. */
  circuit: CircuitSettings;
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

const duration = durationVariable;
const integer = integerVariable;
const flag = flagVariable;

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
  WEBHOOK_TIMEOUT: duration(10 * SECOND),
  CIRCUIT_WINDOW: duration(DEFAULT_CIRCUIT.windowMs),
  CIRCUIT_MIN_CALLS: integer(DEFAULT_CIRCUIT.minCalls, 1, 100_000),
  CIRCUIT_FAILURE_RATIO: numberVariable(DEFAULT_CIRCUIT.failureRatio, 0.01, 1),
  CIRCUIT_COOLDOWN: duration(DEFAULT_CIRCUIT.cooldownMs),
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
  WEBHOOK_TIMEOUT: ['10s', 'timeout of one provider request (webhook, Resend, Twilio)'],
  CIRCUIT_WINDOW: ['30s', "window over which a destination's calls and failures are counted"],
  CIRCUIT_MIN_CALLS: ['10', 'calls within the window before a circuit may open'],
  CIRCUIT_FAILURE_RATIO: ['0.5', 'share of retryable failures (5xx, timeouts, network) that opens the circuit'],
  CIRCUIT_COOLDOWN: ['15s', 'wait before the probe of an open circuit; doubles after each failed probe, up to 5m'],
  METRICS_PORT: ['9464', 'worker port of /metrics, /healthz and /readyz; 0 switches it off'],
};

function taskVariables() {
  const shape: Record<string, z.ZodType> = {};
  for (const definition of allTaskDefinitions()) {
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

function providerVariables() {
  const shape: Record<string, z.ZodType> = {};
  for (const provider of PROVIDERS) for (const variable of provider.variables()) shape[variable.name] = variable.schema;
  return shape;
}

export function configVariables(): VariableDoc[] {
  const docs: VariableDoc[] = Object.entries({ ...fixedDocs, ...redisDocs }).map(([name, [fallback, description]]) => ({
    name,
    default: fallback,
    description,
  }));
  for (const provider of PROVIDERS) {
    for (const variable of provider.variables()) {
      docs.push({ name: variable.name, default: variable.default, description: variable.description });
    }
  }
  for (const definition of allTaskDefinitions()) {
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
  const schema = z.object({ ...fixedVariables, ...redisVariables, ...providerVariables(), ...taskVariables() });
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
  const channels = {} as Record<TaskType, ChannelSetting>;
  for (const definition of allTaskDefinitions()) {
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
    redis: redisTargetFrom(env, v),
    waitReplicas: v.REDIS_WAIT_REPLICAS,
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
    delivery: {
      channels,
      values: Object.fromEntries(
        PROVIDERS.flatMap((provider) => provider.variables().map((variable) => [variable.name, values[variable.name]])),
      ),
      timeoutMs: v.WEBHOOK_TIMEOUT,
    },
    circuit: {
      windowMs: v.CIRCUIT_WINDOW,
      minCalls: v.CIRCUIT_MIN_CALLS,
      failureRatio: v.CIRCUIT_FAILURE_RATIO,
      cooldownMs: v.CIRCUIT_COOLDOWN,
      maxCooldownMs: DEFAULT_CIRCUIT.maxCooldownMs,
    },
    metricsPort: v.METRICS_PORT,
    tasks,
  };
}
