/**
 * TLS and ACL users, on a real redis-server serving TLS only (its tls-port) with a CA made
 * by openssl. The ACL users are created with the exact `ACL SETUSER` lines of
 * docs/REDIS.md. A fleet (producer, worker with retries and dead letters, sweeper, status,
 * dead-letter list/replay/purge, metrics) then runs under them, configured only through
 * the environment variables, and Redis' ACL log shows that nothing it did was refused.
 * The producer user is refused what it has no business doing.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type AftercallConfig } from '../src/config/environment.js';
import { conversationStatus } from '../src/ops/status.js';
import { createProducer, RedisUnavailableError } from '../src/producer/producer.js';
import { createRedisConnection } from '../src/redis/connection.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { readFleetState } from '../src/redis/fleet-state.js';
import { typeKeys } from '../src/redis/keys.js';
import type { RedisClient } from '../src/redis/scripts.js';
import { sweepExpiredJobs } from '../src/worker/expiry-sweeper.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { testEnv } from './helpers/redis.js';
import { makeCertificates, startTlsRedis, type Certificates, type TlsRedis } from './helpers/redis-topology.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const PREFIX = 'aftercall'; // the prefix the documented ACL lines are written for
const passwords = { producer: randomBytes(12).toString('hex'), worker: randomBytes(12).toString('hex') };

/** The `ACL SETUSER` lines of docs/REDIS.md, with test passwords. */
function documentedAclLines(): string[][] {
  const doc = readFileSync(fileURLToPath(new URL('../docs/REDIS.md', import.meta.url)), 'utf8');
  const block = /<!-- acl:begin -->([\s\S]*?)<!-- acl:end -->/.exec(doc)?.[1] ?? '';
  return block
    .split('\n')
    .filter((line) => line.startsWith('ACL SETUSER '))
    .map((line) =>
      line
        .split(/\s+/)
        .slice(1)
        .map((word) => word.replace(/^>CHANGE-ME-(\w+)$/, (_, user: 'producer' | 'worker') => `>${passwords[user]}`)),
    );
}

let certs: Certificates;
let server: TlsRedis;
let admin: Redis;
let receiver: WebhookReceiver;
let workerConfig: AftercallConfig;
let worker: FleetWorker;

const tlsFiles = () => ({
  REDIS_TLS_CA_FILE: certs.caFile,
  REDIS_TLS_CERT_FILE: certs.clientCertFile,
  REDIS_TLS_KEY_FILE: certs.clientKeyFile,
});
const urlFor = (user: 'producer' | 'worker') =>
  `rediss://aftercall-${user}:${passwords[user]}@127.0.0.1:${server.port}`;
const tlsOptions = (): RedisOptions['tls'] => ({
  ca: readFileSync(certs.caFile),
  cert: readFileSync(certs.clientCertFile),
  key: readFileSync(certs.clientKeyFile),
});
function connectAs(user: 'producer' | 'worker'): Redis {
  const client = new Redis({
    host: '127.0.0.1',
    port: server.port,
    username: `aftercall-${user}`,
    password: passwords[user],
    tls: tlsOptions(),
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  return client;
}

beforeAll(async () => {
  certs = makeCertificates();
  server = await startTlsRedis(certs, { clientCertificates: 'yes' });
  admin = server.connect();
  await admin.connect();
  const lines = documentedAclLines();
  expect(lines.map((line) => line[1])).toEqual(['aftercall-producer', 'aftercall-worker']);
  for (const line of lines) expect(await admin.call('ACL', ...line)).toBe('OK');
  receiver = await startReceiver();
  workerConfig = loadConfig(
    testEnv(PREFIX, receiver.url, { REDIS_URL: urlFor('worker'), ...tlsFiles(), SWEEP_INTERVAL: '300ms' }),
  );
  worker = await startWorker({ config: workerConfig, concurrency: 3 });
  await worker.ready;
}, 60_000);

afterAll(async () => {
  await worker?.close();
  await receiver?.close();
  admin?.disconnect();
  await server?.stop();
  certs?.remove();
});

async function refusals(user: string): Promise<string[]> {
  const log = (await admin.call('ACL', 'LOG', '128')) as unknown[][];
  return log
    .map((entry) =>
      Object.fromEntries(Array.from({ length: entry.length / 2 }, (_, i) => [entry[2 * i], entry[2 * i + 1]])),
    )
    .filter((entry) => entry.username === user)
    .map((entry) => `${String(entry.reason)} ${String(entry.object)}`);
}

describe('a fleet under the documented ACL users, over mutual TLS', () => {
  it('enqueues, delivers, retries, dead-letters, sweeps, reports and replays without a single refusal', async () => {
    const producerConfig = loadConfig(testEnv(PREFIX, receiver.url, { REDIS_URL: urlFor('producer'), ...tlsFiles() }));
    expect(producerConfig.redis).toMatchObject({ mode: 'standalone', tls: { caFile: certs.caFile } });
    const producer = createProducer({ redis: producerConfig.redis, prefix: PREFIX });
    const ops: RedisClient = createRedisConnection('worker', { redis: workerConfig.redis, name: 'test-ops' });
    const tries = new Map<string, number>();
    receiver.answer = (receipt) => {
      const key = receipt.body.idempotencyKey;
      tries.set(key, (tries.get(key) ?? 0) + 1);
      if (receipt.body.conversationId === 'acl-refused') return { status: 422 };
      if (receipt.body.conversationId === 'acl-flaky' && tries.get(key) === 1) return { status: 503 };
      return { status: 200 };
    };
    try {
      const now = Date.now();
      await producer.conversationEnded(bookedOutcome('acl-booked', now, { ticket: { id: 'T-1' } }));
      await producer.conversationEnded(resolvedOutcome('acl-flaky', now));
      await producer.conversationEnded(resolvedOutcome('acl-refused', now));

      const entries = await waitUntil(
        () => conversationStatus(ops, PREFIX, 'acl-flaky'),
        (list) => list.length > 0 && list.every((entry) => entry.state === 'completed'),
        'the flaky conversation to be delivered after a retry',
      );
      expect(entries.some((entry) => entry.attempts === 2)).toBe(true);
      await waitUntil(
        () => conversationStatus(ops, PREFIX, 'acl-refused'),
        (list) => list.some((entry) => entry.state === 'dead_lettered'),
        'a terminal refusal to be dead-lettered',
      );
      // The sweeper (the worker's, and one run here) dead-letters what expired unpicked.
      const swept = await sweepExpiredJobs(ops, { prefix: PREFIX, now: now + 30 * 24 * 3_600_000 });
      expect(Object.values(swept.expired).reduce((sum, count) => sum + count, 0)).toBeGreaterThan(0);

      const dlq = new DeadLetterQueue(ops, PREFIX);
      const dead = await dlq.list({ reason: 'terminal' });
      expect(dead.map((entry) => entry.conversationId)).toContain('acl-refused');
      receiver.answer = () => ({ status: 200 });
      const replayed = dead.find((entry) => entry.conversationId === 'acl-refused')!;
      expect(await dlq.replay(replayed.type, replayed.jobId, { expiresAt: Date.now() + 3_600_000 })).toBe(true);
      await waitUntil(
        () => conversationStatus(ops, PREFIX, 'acl-refused'),
        (list) => list.find((entry) => entry.jobId === replayed.jobId)?.state === 'completed',
        'the replayed task to be delivered',
      );
      const expired = await dlq.list({ reason: 'expired', limit: 1 });
      expect(await dlq.purge(expired[0]!.type, expired[0]!.jobId)).toBe(true);

      const state = await readFleetState(ops, PREFIX);
      expect(state.workers.send_email).toBeGreaterThan(0); // CLIENT LIST under the worker user
      expect(state.created.send_email).toBeGreaterThan(0);

      expect(await refusals('aftercall-worker')).toEqual([]);
      expect(await refusals('aftercall-producer')).toEqual([]);
    } finally {
      await producer.close();
      ops.disconnect();
    }
  });

  it('refuses the producer user everything but enqueueing', async () => {
    const producer = connectAs('producer');
    const job = `${typeKeys(PREFIX, 'send_email').base}some-job`;
    const refused = async (command: string, ...args: string[]) =>
      (await producer.call(command, ...args).then(
        () => 'allowed',
        (error: Error) => error.message,
      )) as string;
    try {
      expect(await refused('PING')).toBe('allowed');
      for (const [command, ...args] of [
        ['HGETALL', job], // read a task's payload
        ['LRANGE', typeKeys(PREFIX, 'send_email').wait, '0', '-1'], // read a queue
        ['BZPOPMIN', typeKeys(PREFIX, 'send_email').marker, '0.01'], // take work
        ['SCAN', '0'],
        ['KEYS', '*'],
        ['GET', 'another-app:secret'], // a key outside the prefix
        ['SET', 'another-app:secret', 'x'],
        ['FLUSHALL'],
        ['CONFIG', 'GET', 'requirepass'],
        ['CLIENT', 'LIST'],
        ['CLIENT', 'KILL', 'TYPE', 'normal'],
        ['MONITOR'],
        ['SHUTDOWN'],
      ] as const) {
        expect(await refused(command, ...args), `${command} ${args.join(' ')}`).toMatch(/NOPERM/);
      }
    } finally {
      producer.disconnect();
    }
  });

  it('refuses the worker user admin commands and keys outside the prefix', async () => {
    const client = connectAs('worker');
    try {
      expect(await client.hgetall(`${typeKeys(PREFIX, 'send_email').base}nothing`)).toEqual({});
      for (const [command, ...args] of [
        ['GET', 'another-app:secret'],
        ['FLUSHALL'],
        ['FLUSHDB'],
        ['KEYS', '*'],
        ['CONFIG', 'SET', 'appendonly', 'no'],
        ['CLIENT', 'KILL', 'TYPE', 'normal'],
        ['SCRIPT', 'FLUSH'],
        ['SWAPDB', '0', '1'],
        ['SHUTDOWN'],
      ] as const) {
        const answer = await client.call(command, ...args).then(
          () => 'allowed',
          (error: Error) => error.message,
        );
        expect(answer, `${command} ${args.join(' ')}`).toMatch(/NOPERM/);
      }
    } finally {
      client.disconnect();
    }
  });
});

describe('TLS', () => {
  it('refuses a client without the client certificate when the server requires mutual TLS', async () => {
    const config = loadConfig(
      testEnv(PREFIX, receiver.url, { REDIS_URL: urlFor('producer'), REDIS_TLS_CA_FILE: certs.caFile }),
    );
    const producer = createProducer({ redis: config.redis, prefix: PREFIX, timeoutMs: 1_000 });
    try {
      await expect(producer.conversationEnded(resolvedOutcome('tls-no-cert'))).rejects.toBeInstanceOf(
        RedisUnavailableError,
      );
    } finally {
      await producer.close();
    }
  });

  it('verifies the server against REDIS_TLS_CA_FILE: without it, a private CA is not trusted', async () => {
    const optional = await startTlsRedis(certs, { clientCertificates: 'optional' });
    const url = `rediss://127.0.0.1:${optional.port}`;
    try {
      const trusted = createProducer({
        redis: loadConfig(testEnv(PREFIX, receiver.url, { REDIS_URL: url, REDIS_TLS_CA_FILE: certs.caFile })).redis,
        prefix: `${PREFIX}-ca`,
      });
      const result = await trusted.conversationEnded(resolvedOutcome('tls-ca-only'));
      expect(result.tasks.every((task) => task.created)).toBe(true);
      await trusted.close();

      const untrusted = createProducer({
        redis: loadConfig(testEnv(PREFIX, receiver.url, { REDIS_URL: url })).redis,
        prefix: `${PREFIX}-ca`,
        timeoutMs: 1_000,
      });
      await expect(untrusted.conversationEnded(resolvedOutcome('tls-untrusted'))).rejects.toBeInstanceOf(
        RedisUnavailableError,
      );
      await untrusted.close();
    } finally {
      await optional.stop();
    }
  });
});
