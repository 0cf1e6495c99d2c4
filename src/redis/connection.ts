/**
 * The one place Redis connections are made.
 *
 * - Workers (and the sweeper, and the admin commands) reconnect forever and queue
 *   commands while disconnected: a Redis restart pauses them, it does not kill them.
 * - Producers run inside the voice agent and must never make it wait: they do not queue
 *   commands while disconnected, every command times out, and `conversationEnded` has an
 *   overall deadline (see producer.ts). A producer keeps reconnecting in the background,
 *   so the next call succeeds as soon as Redis is back.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisClient } from './scripts.js';

export type ConnectionRole = 'producer' | 'worker';

export interface ConnectionSettings {
  /** redis:// or rediss:// URL, with user and password when needed. */
  url: string;
  /** Producer only: how long a command may take before it fails. */
  timeoutMs?: number;
  /** Name shown by CLIENT LIST. */
  name?: string;
}

const reconnectForever = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5_000);

export function redisOptions(role: ConnectionRole, settings: ConnectionSettings): RedisOptions {
  const common: RedisOptions = { connectionName: settings.name ?? `aftercall-${role}` };
  if (role === 'worker') {
    return { ...common, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: reconnectForever };
  }
  const timeoutMs = settings.timeoutMs ?? 2_000;
  return {
    ...common,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: reconnectForever,
  };
}

export function createRedisConnection(role: ConnectionRole, settings: ConnectionSettings): Redis {
  const client = new Redis(settings.url, redisOptions(role, settings));
  // Connection errors surface through the calls that need Redis; an 'error' listener
  // keeps ioredis from reporting every reconnect attempt as an unhandled error.
  client.on('error', () => undefined);
  return client;
}

const readiness = new WeakMap<RedisClient, Promise<void>>();

/** Resolves when the connection is ready, or rejects after `timeoutMs`. Concurrent callers share one wait. */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  let waiting = readiness.get(client);
  if (!waiting) {
    waiting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        reject(new Error(`Redis is not reachable (no connection within ${timeoutMs} ms)`));
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      client.once('ready', onReady);
    }).finally(() => readiness.delete(client));
    readiness.set(client, waiting);
  }
  return waiting;
}

/** Redacts the password of a Redis URL for messages and logs. */
export function describeRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}
