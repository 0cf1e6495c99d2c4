/**
 * Real Redis for tests: a unique key prefix per test file, removed afterwards.
 *
 * The backend is standalone Redis at REDIS_URL, or, in vitest's `cluster` project
 * (vitest.config.ts), a real 3-master Redis Cluster that test/helpers/cluster-setup.ts
 * starts once for the whole run: TEST_REDIS, redis(), testEnv() and the key helpers follow
 * it, so a suite written against them runs on both.
 */
import { randomBytes } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';
import { inject } from 'vitest';
import { loadConfig, type AftercallConfig } from '../../src/config/environment.js';
import type { RedisTarget } from '../../src/redis/connection.js';
import type { RedisClient } from '../../src/redis/scripts.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Seed node URLs of the cluster the `cluster` project runs against. */
    redisClusterNodes: string[];
  }
}

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Which Redis the suites run against: `standalone` (REDIS_URL) or `cluster` (the cluster project). */
export const TEST_BACKEND: 'standalone' | 'cluster' =
  process.env.AFTERCALL_TEST_BACKEND === 'cluster' ? 'cluster' : 'standalone';
const clusterNodes = TEST_BACKEND === 'cluster' ? inject('redisClusterNodes') : [];

/** The backend as a connection target, for createProducer({ redis }) and the factory. */
export const TEST_REDIS: RedisTarget =
  TEST_BACKEND === 'cluster' ? { mode: 'cluster', nodes: clusterNodes } : { mode: 'standalone', url: REDIS_URL };

/** The backend's Redis variables, for loadConfig and child processes (REDIS_URL is emptied on a cluster). */
export const REDIS_ENV: Record<string, string> =
  TEST_BACKEND === 'cluster' ? { REDIS_URL: '', REDIS_CLUSTER_NODES: clusterNodes.join(',') } : { REDIS_URL };

const isCluster = (client: RedisClient): client is Cluster => (client as Cluster).isCluster === true;

export function uniquePrefix(name: string): string {
  return `test-${name}-${randomBytes(4).toString('hex')}`;
}

/**
 * A connection to the backend. In the cluster project it is a `Cluster`, typed as `Redis`
 * so that the helpers written for one server accept it: it serves the same key commands,
 * each routed to its slot's shard (keysWithPrefix and removePrefix visit every primary).
 */
export function redis(): Redis {
  if (TEST_BACKEND === 'cluster')
    return new Cluster(
      clusterNodes.map((url) => ({ host: new URL(url).hostname, port: Number(new URL(url).port) })),
      { redisOptions: { maxRetriesPerRequest: null } },
    ) as unknown as Redis;
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

/** Every key under the prefix (on a cluster, from every primary). */
export async function keysWithPrefix(client: RedisClient, prefix: string): Promise<string[]> {
  const nodes: Redis[] = isCluster(client) ? client.nodes('master') : [client];
  const keys: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

/**
 * Removes every key under the prefix, a SCAN batch at a time (a benchmark's prefix may hold
 * millions); on a cluster, on every primary, one slot at a time (UNLINK takes one slot's keys).
 */
export async function removePrefix(client: RedisClient, prefix: string): Promise<void> {
  const nodes: Redis[] = isCluster(client) ? client.nodes('master') : [client];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      const bySlot = new Map<number, string[]>();
      for (const key of keys) {
        const slot = isCluster(client) ? calculateSlot(key) : 0;
        bySlot.set(slot, [...(bySlot.get(slot) ?? []), key]);
      }
      for (const group of bySlot.values()) await node.unlink(...group);
      cursor = next;
    } while (cursor !== '0');
  }
}

export const WEBHOOK_SECRET = `whsec_${Buffer.from('aftercall-test-secret-0123456789').toString('base64')}`;

/** The environment a test worker runs with: every type's webhook on `baseUrl`, fast retries. */
export function testEnv(prefix: string, baseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...REDIS_ENV,
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
