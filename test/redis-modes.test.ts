/**
 * Connection modes: how the environment chooses standalone, cluster or sentinel (one at a
 * time, with TLS files only where TLS is used), and a real Sentinel failover: three
 * `redis-server --sentinel` processes promote the replica of a killed primary, and a
 * running worker and producer follow it without a restart.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/environment.js';
import { conversationStatus } from '../src/ops/status.js';
import { createProducer } from '../src/producer/producer.js';
import { createRedisConnection } from '../src/redis/connection.js';
import { startWorker } from '../src/worker/worker.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { testEnv } from './helpers/redis.js';
import { startSentinelSet, type SentinelSet } from './helpers/redis-topology.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const configError = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
};

describe('choosing the mode from the environment', () => {
  const pem = join(tmpdir(), `aftercall-modes-${process.pid}.pem`);
  writeFileSync(pem, 'not checked until a connection is made\n');

  it('is standalone by default and with REDIS_URL', () => {
    expect(loadConfig({}).redis).toEqual({ mode: 'standalone', url: 'redis://127.0.0.1:6379' });
    expect(loadConfig({ REDIS_URL: 'redis://u:p@redis:6380/2' }).redis).toEqual({
      mode: 'standalone',
      url: 'redis://u:p@redis:6380/2',
    });
  });

  it('reads a cluster from REDIS_CLUSTER_NODES and a sentinel set from REDIS_SENTINELS', () => {
    expect(
      loadConfig({
        REDIS_CLUSTER_NODES: 'rediss://w:pw@node-a:6379, rediss://w:pw@node-b:6379',
        REDIS_TLS_CA_FILE: pem,
      }).redis,
    ).toEqual({
      mode: 'cluster',
      nodes: ['rediss://w:pw@node-a:6379', 'rediss://w:pw@node-b:6379'],
      tls: { caFile: pem },
    });
    expect(
      loadConfig({
        REDIS_SENTINELS: 's1:26379,s2:26379',
        REDIS_SENTINEL_MASTER: 'primary',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
        REDIS_URL: 'redis://w:pw@ignored:6379/1',
      }).redis,
    ).toEqual({
      mode: 'sentinel',
      sentinels: ['s1:26379', 's2:26379'],
      masterName: 'primary',
      sentinelPassword: 'sentinel-secret',
      url: 'redis://w:pw@ignored:6379/1',
    });
  });

  it('refuses two modes at once, naming both variables', () => {
    const [both] = configError({ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'redis://b:6379' });
    expect(both!.message).toMatch(/REDIS_URL and REDIS_CLUSTER_NODES are both set/);
    const [clusterAndSentinel] = configError({
      REDIS_CLUSTER_NODES: 'redis://b:6379',
      REDIS_SENTINELS: 's:26379',
      REDIS_SENTINEL_MASTER: 'm',
    });
    expect(clusterAndSentinel!.message).toMatch(/REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set/);
  });

  it('names what a mode is missing or what is malformed', () => {
    expect(configError({ REDIS_SENTINELS: 's:26379' })).toEqual([
      { path: 'REDIS_SENTINEL_MASTER', message: expect.stringMatching(/required with REDIS_SENTINELS/) },
    ]);
    expect(configError({ REDIS_SENTINEL_MASTER: 'm' })[0]!.path).toBe('REDIS_SENTINELS');
    expect(configError({ REDIS_SENTINELS: 'nohostport', REDIS_SENTINEL_MASTER: 'm' })[0]).toEqual({
      path: 'REDIS_SENTINELS',
      message: expect.stringMatching(/expected host:port/),
    });
    expect(configError({ REDIS_CLUSTER_NODES: 'http://node:6379' })[0]).toEqual({
      path: 'REDIS_CLUSTER_NODES',
      message: expect.stringMatching(/redis:\/\/ or rediss:\/\//),
    });
    expect(configError({ REDIS_WAIT_REPLICAS: 'two' })[0]!.path).toBe('REDIS_WAIT_REPLICAS');
  });

  it('refuses TLS files that would not be used or cannot be read', () => {
    expect(configError({ REDIS_URL: 'redis://r:6379', REDIS_TLS_CA_FILE: pem })[0]).toEqual({
      path: 'REDIS_TLS_CA_FILE',
      message: expect.stringMatching(/use rediss:\/\/ in REDIS_URL/),
    });
    expect(configError({ REDIS_URL: 'rediss://r:6379', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' })[0]).toEqual({
      path: 'REDIS_TLS_CA_FILE',
      message: expect.stringMatching(/cannot read \/nonexistent\/ca.pem/),
    });
    expect(configError({ REDIS_URL: 'rediss://r:6379', REDIS_TLS_CERT_FILE: pem })[0]).toEqual({
      path: 'REDIS_TLS_KEY_FILE',
      message: expect.stringMatching(/needs both/),
    });
  });

  it('createProducer takes one of a URL, a target and a connection', () => {
    const connection = createRedisConnection('producer', { redis: 'redis://127.0.0.1:1' });
    try {
      expect(() => createProducer({ redisUrl: 'redis://127.0.0.1:6379', connection })).toThrow(
        /give one of redisUrl, redis and connection, not redisUrl and connection/,
      );
    } finally {
      connection.disconnect();
    }
  });
});

describe('Sentinel', () => {
  let set: SentinelSet;
  const password = 'primary-secret';
  const sentinelPassword = 'sentinel-secret';

  beforeAll(async () => {
    set = await startSentinelSet({ password, sentinelPassword });
  }, 90_000);
  afterAll(async () => {
    await set?.stop();
  });

  it('a worker and a producer follow the promotion of the replica when the primary dies', async () => {
    const receiver = await startReceiver();
    const prefix = 'sentinel';
    const env = testEnv(prefix, receiver.url, {
      REDIS_URL: `redis://:${password}@unused-host:6379`,
      REDIS_SENTINELS: set.addresses.join(','),
      REDIS_SENTINEL_MASTER: set.masterName,
      REDIS_SENTINEL_PASSWORD: sentinelPassword,
      PRODUCER_TIMEOUT: '1s',
    });
    const config = loadConfig(env);
    expect(config.redis.mode).toBe('sentinel');
    const worker = await startWorker({ config, concurrency: 2, sweeper: false });
    await worker.ready;
    const producer = createProducer({ redis: config.redis, prefix, timeoutMs: config.producerTimeoutMs });
    const ops = createRedisConnection('worker', { redis: config.redis });
    const delivered = (conversationId: string) =>
      waitUntil(
        () => conversationStatus(ops, prefix, conversationId),
        (entries) => entries.length > 0 && entries.every((entry) => entry.state === 'completed'),
        `${conversationId} to be delivered`,
        40_000,
      );
    try {
      await producer.conversationEnded(resolvedOutcome('before-failover'));
      await delivered('before-failover');
      const old = await set.currentPrimary();
      await old.kill('SIGKILL');

      // The producer fails fast while there is no primary, then succeeds again once the
      // Sentinels have promoted the replica: same producer, no restart.
      let refused = 0;
      await waitUntil(
        () =>
          producer.conversationEnded(resolvedOutcome('after-failover')).then(
            () => true,
            () => {
              refused += 1;
              return false;
            },
          ),
        Boolean,
        'the producer to enqueue through the new primary',
        40_000,
      );
      const promoted = await set.currentPrimary();
      expect(promoted).not.toBe(old);
      // The worker, also unrestarted, delivers from the new primary.
      await delivered('after-failover');
      expect(receiver.receipts.some((receipt) => receipt.body.conversationId === 'after-failover')).toBe(true);
      console.info(`sentinel failover: the producer was refused ${refused} times while no primary was known`);
    } finally {
      await worker.close();
      await producer.close();
      ops.disconnect();
      await receiver.close();
    }
  }, 120_000);
});
