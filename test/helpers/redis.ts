/** Real Redis for tests: a unique key prefix per test file, removed afterwards. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { loadConfig, type AftercallConfig } from '../../src/config/environment.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function uniquePrefix(name: string): string {
  return `test-${name}-${randomBytes(4).toString('hex')}`;
}

export function redis(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

export async function keysWithPrefix(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

/** Removes every key under the prefix, a SCAN batch at a time (a benchmark's prefix may hold millions). */
export async function removePrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

export const WEBHOOK_SECRET = `whsec_${Buffer.from('aftercall-test-secret-0123456789').toString('base64')}`;

/** The environment a test worker runs with: every type's webhook on `baseUrl`, fast retries. */
export function testEnv(prefix: string, baseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL,
    AFTERCALL_PREFIX: prefix,
    WEBHOOK_SECRET,
    CRM_WEBHOOK_URL: `${baseUrl}/crm`,
    TICKETS_WEBHOOK_URL: `${baseUrl}/tickets`,
    CALLBACKS_WEBHOOK_URL: `${baseUrl}/callbacks`,
    EMAIL_WEBHOOK_URL: `${baseUrl}/email`,
    REMINDERS_WEBHOOK_URL: `${baseUrl}/reminders`,
    SURVEYS_WEBHOOK_URL: `${baseUrl}/surveys`,
    RETRY_BASE_DELAY: '50ms',
    RETRY_MAX_DELAY: '400ms',
    RETRY_JITTER: '20ms',
    LOCK_DURATION: '2s',
    STALLED_INTERVAL: '500ms',
    SWEEP_INTERVAL: '500ms',
    LOG_LEVEL: 'silent',
    METRICS_PORT: '0',
    ...extra,
  };
}

export function testConfig(prefix: string, baseUrl: string, extra: Record<string, string> = {}): AftercallConfig {
  return loadConfig(testEnv(prefix, baseUrl, extra));
}
