/**
 * Provider limits and outages spend a task's time, not its attempts: fleet-wide rate
 * limits, 429 holds, circuit breakers, 410 Gone, operator holds. Real Redis, real workers,
 * a real HTTP receiver on loopback playing the provider.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { createProducer, type Producer } from '../src/producer/producer.js';
import { createDestinationPolicy } from '../src/delivery/destination-policy.js';
import { createDestinationStore, destinationKeys, type DestinationStore } from '../src/redis/destination-store.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { conversationStatus } from '../src/ops/status.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import type { JobOutcomeEvent } from '../src/worker/job-handler.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { startChildWorker } from './helpers/child-worker.js';
import { startPrivateRedis } from './helpers/redis-server.js';
import { redis, REDIS_URL, removePrefix, testConfig, testEnv, uniquePrefix, WEBHOOK_SECRET } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const client = redis();
let receiver: WebhookReceiver;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  receiver = await startReceiver();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  receiver.receipts.length = 0;
  receiver.answer = () => ({ status: 200 });
});
afterAll(async () => {
  await receiver.close();
  client.disconnect();
});

interface Fleet {
  prefix: string;
  producer: Producer;
  workers: FleetWorker[];
  events: JobOutcomeEvent[];
  dlq: DeadLetterQueue;
  start(): Promise<FleetWorker>;
}

/** One or more in-process workers serving update_crm against the receiver's /crm. */
async function fleet(name: string, env: Record<string, string>, processes = 1, concurrency = 10): Promise<Fleet> {
  const prefix = uniquePrefix(name);
  const config = testConfig(prefix, receiver.url, env);
  // The producer computes each task's expiry: it takes the same task settings as the workers.
  const producer = createProducer({ redisUrl: REDIS_URL, prefix, tasks: config.tasks });
  const events: JobOutcomeEvent[] = [];
  const result: Fleet = {
    prefix,
    producer,
    workers: [],
    events,
    dlq: new DeadLetterQueue(client, prefix),
    async start() {
      const worker = await startWorker({
        config,
        queues: ['update_crm'],
        concurrency,
        sweeper: false,
        onOutcome: (event) => events.push(event),
      });
      await worker.ready;
      result.workers.push(worker);
      return worker;
    },
  };
  for (let i = 0; i < processes; i++) await result.start();
  cleanups.push(async () => {
    await Promise.all(result.workers.map((worker) => worker.close()));
    await producer.close();
    await removePrefix(client, prefix);
  });
  return result;
}

/** Conversation ids carry the prefix, so receipts of one test are told apart from another's. */
async function enqueue(f: Fleet, count: number, now = Date.now()): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${f.prefix}-c${i}`);
  await Promise.all(ids.map((id) => f.producer.conversationEnded(resolvedOutcome(id, now))));
  return ids;
}

const crmOf = (f: Fleet) => receiver.receipts.filter((receipt) => receipt.body.conversationId.startsWith(f.prefix));
const deliveredOnce = (f: Fleet) =>
  new Set(
    crmOf(f)
      .filter((r) => r.signatureValid)
      .map((r) => r.body.idempotencyKey),
  );

async function settledAll(f: Fleet, ids: string[], timeoutMs = 30_000, on: Redis = client) {
  return waitUntil(
    async () =>
      (
        await Promise.all(
          ids.map(async (id) => (await conversationStatus(on, f.prefix, id)).find((t) => t.type === 'update_crm')),
        )
      ).map((status) => status?.state),
    (states) => states.every((state) => state === 'completed' || state === 'dead_lettered'),
    'every update_crm to settle',
    timeoutMs,
    // Polled slowly: this process also runs the receiver, whose arrival times the limit tests read.
    250,
  );
}

describe('fleet-wide rate limit', () => {
  it('never sends more than the limit in any window across three worker processes, and uses no attempt waiting', async () => {
    const prefix = uniquePrefix('limit');
    // A Redis of its own, watched with MONITOR: every grant the limiter writes (a ZADD inside
    // the acquire script) is pushed to the watcher as it happens, so none is missed however
    // long this loaded process pauses. The grant log itself is trimmed after a window.
    const privateRedis = await startPrivateRedis();
    const own = new Redis(privateRedis.url);
    const env = {
      ...testEnv(prefix, receiver.url),
      REDIS_URL: privateRedis.url,
      CRM_WEBHOOK_RATE_LIMIT: '4/s',
      TASK_UPDATE_CRM_ATTEMPTS: '1',
    };
    const grants = new Map<string, number>();
    const grantsKey = `${prefix}:{dest:webhook:update_crm}:grants`;
    const monitor = await own.duplicate().monitor();
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[1] !== grantsKey) return;
      const command = args[0]?.toUpperCase();
      if (command === 'ZADD') grants.set(args[3]!, Number(args[2]));
      // A grant its worker acted on too late is given back unused (destination-policy.ts).
      if (command === 'ZREM') grants.delete(args[2]!);
    });
    const producer = createProducer({ redisUrl: privateRedis.url, prefix });
    const workers = [0, 1, 2].map(() => startChildWorker(env, ['--queues', 'update_crm']));
    cleanups.push(async () => {
      for (const worker of workers) worker.kill('SIGTERM');
      await Promise.all(workers.map((worker) => worker.exited));
      await producer.close();
      monitor.disconnect();
      own.disconnect();
      await privateRedis.destroy();
    });
    await Promise.all(workers.map((worker) => worker.waitForLog((line) => line.msg === 'worker started')));
    const ids = Array.from({ length: 24 }, (_, i) => `${prefix}-c${i}`);
    await Promise.all(ids.map((id) => producer.conversationEnded(resolvedOutcome(id))));
    const f = { prefix } as Fleet;
    const states = await settledAll(f, ids, 30_000, own);
    expect(states.every((state) => state === 'completed')).toBe(true);
    expect(deliveredOnce(f).size).toBe(24);
    // Granted: 24, never more than 4 in any second, across the three processes.
    expect(grants.size).toBe(24);
    const granted = [...grants.values()].sort((a, b) => a - b);
    let most = 0;
    for (let k = 0, m = 0; k < granted.length; k++) {
      while (granted[k]! - granted[m]! >= 1_000) m++;
      most = Math.max(most, k - m + 1);
    }
    expect(most).toBeLessThanOrEqual(4);
    // What the destination saw: over the run the rate stays under the limit (24 requests at
    // 4/s span at least 5 s after the first). Arrival times within a second also carry the way
    // from grant to receiver, which a loaded 2-core machine stretches by hundreds of
    // milliseconds: the benchmark and the chaos run report the provider's strict per-second view.
    const arrivals = crmOf(f)
      .map((receipt) => receipt.arrivedAt)
      .sort((a, b) => a - b);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(5 * 1_000 - 200);
    const lines = workers.flatMap((worker) => worker.logs);
    // Jobs waited for the limit without spending their single attempt: none was dead-lettered.
    expect(lines.filter((line) => line.result === 'postponed').length).toBeGreaterThanOrEqual(24 - 4);
    expect(lines.filter((line) => line.result === 'dead_lettered')).toEqual([]);
    // All three processes took part.
    for (const worker of workers) expect(worker.logs.some((line) => line.result === 'completed')).toBe(true);
  });

  it('dead-letters a task as expired, naming the rate limit, when the next free slot comes after its expiry', async () => {
    const f = await fleet('limit-expiry', {
      CRM_WEBHOOK_RATE_LIMIT: '1/min',
      TASK_UPDATE_CRM_EXPIRES_AFTER: '20s',
      WEBHOOK_TIMEOUT: '2s',
    });
    const ids = await enqueue(f, 3);
    await settledAll(f, ids);
    expect(crmOf(f)).toHaveLength(1);
    const entries = await f.dlq.list({ types: ['update_crm'] });
    expect(entries).toHaveLength(2);
    for (const entry of entries) {
      expect(entry.reason).toBe('expired');
      expect(entry.lastError).toMatch(/rate limit of webhook:update_crm \(1\/min\)/);
    }
  });
});

describe('a grant acted on too late', () => {
  it('is given back and asked again, so a request never leaves more than the margin after its grant', async () => {
    const prefix = uniquePrefix('late-grant');
    cleanups.push(() => removePrefix(client, prefix));
    const t0 = Date.now();
    // The process' clock, read at each call: the reply to the first question is handled
    // 40 ms after it was asked (the margin of a 4/s limit is 30 ms), the next one at once.
    const readings = [t0, t0 + 40, t0 + 40, t0 + 40];
    const store = createDestinationStore(client, prefix);
    const policy = createDestinationPolicy({
      store,
      limits: { 'webhook:update_crm': { limit: 4, periodMs: 1_000 } },
      defaultHoldMs: 1_000,
      deliveryTimeoutMs: 1_000,
      clock: () => readings.shift() ?? t0 + 40,
    });
    cleanups.push(() => policy.close());
    expect(await policy.acquire('webhook:update_crm', 'job-1', t0 + 3_600_000)).toEqual({ go: true, probe: false });
    // One grant stands, at the time of the second question: the late one was given back.
    const grants = await client.zrangebyscore(
      `${prefix}:{dest:webhook:update_crm}:grants`,
      '-inf',
      '+inf',
      'WITHSCORES',
    );
    expect(grants).toEqual([`job-1:${t0 + 40}`, String(t0 + 40)]);
  });

  it('is used after two given back, rather than asked for without end', async () => {
    const prefix = uniquePrefix('late-grants');
    cleanups.push(() => removePrefix(client, prefix));
    let now = Date.now();
    const store = createDestinationStore(client, prefix);
    // Every reply is handled 40 ms after its question.
    let reads = 0;
    const policy = createDestinationPolicy({
      store,
      limits: { 'webhook:update_crm': { limit: 4, periodMs: 1_000 } },
      defaultHoldMs: 1_000,
      deliveryTimeoutMs: 1_000,
      clock: () => {
        reads += 1;
        if (reads % 2 === 0) now += 40;
        return now;
      },
    });
    cleanups.push(() => policy.close());
    expect((await policy.acquire('webhook:update_crm', 'job-1', now + 3_600_000)).go).toBe(true);
    // Asked three times, two given back: one grant stands.
    expect(await client.zcard(`${prefix}:{dest:webhook:update_crm}:grants`)).toBe(1);
  });
});

describe('a 429', () => {
  it('holds the destination for the whole fleet for its Retry-After and retries without using an attempt', async () => {
    const f = await fleet('429', { TASK_UPDATE_CRM_ATTEMPTS: '2' }, 2);
    let answered429 = 0;
    receiver.answer = () => {
      // A burst of 429s: the first eight requests are turned away.
      if (answered429 < 8) {
        answered429 += 1;
        return { status: 429, headers: { 'retry-after': '1' } };
      }
      return { status: 200 };
    };
    const ids = await enqueue(f, 12);
    const states = await settledAll(f, ids);
    expect(states.every((state) => state === 'completed')).toBe(true);
    expect(deliveredOnce(f).size).toBe(12);
    expect(f.events.filter((event) => event.reason === 'exhausted')).toEqual([]);
    // The hold is fleet-wide: after the first 429s, the rest waited for the hold instead of calling.
    const held = f.events.filter((event) => event.result === 'postponed' && event.waitReason === 'rate_limit');
    expect(held.length).toBeGreaterThanOrEqual(answered429);
    // Each task used at most its first attempt: the 429s did not count.
    const attempts = crmOf(f).map((receipt) => receipt.body.attempt);
    expect(Math.max(...attempts)).toBe(1);
  });
});

describe('circuit breaker', () => {
  const circuitEnv = {
    CIRCUIT_MIN_CALLS: '4',
    CIRCUIT_FAILURE_RATIO: '0.5',
    CIRCUIT_WINDOW: '30s',
    CIRCUIT_COOLDOWN: '1s',
    TASK_UPDATE_CRM_ATTEMPTS: '3',
    RETRY_BASE_DELAY: '100ms',
    RETRY_MAX_DELAY: '200ms',
  };

  it('opens after its threshold, sends only probes while open, and delivers everything after recovery', async () => {
    // Two processes at concurrency 2: at most 4 requests are in flight when the circuit opens.
    const f = await fleet('outage', circuitEnv, 2, 2);
    let down = true;
    receiver.answer = () => ({ status: down ? 503 : 200 });
    const ids = await enqueue(f, 20);
    const store = createDestinationStore(client, f.prefix);
    await waitUntil(
      () => store.read('webhook:update_crm', Date.now(), 30_000),
      (status) => status.state === 'open',
      'the circuit to open',
    );
    // Down for three more seconds: with a 1 s cooldown doubling after each failed probe, only probes get through.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const duringOutage = crmOf(f).length;
    down = false;
    const states = await settledAll(f, ids);
    expect(states.every((state) => state === 'completed')).toBe(true);
    expect(deliveredOnce(f).size).toBe(20);
    expect(f.events.filter((event) => event.result === 'dead_lettered')).toEqual([]);
    // Requests during the outage: the threshold (4 calls), the requests in flight when it
    // opened (at most 2 x 2), and the probes (cooldowns of 1 s then 2 s: at most 2). Without
    // the circuit, 20 tasks x 3 attempts would have made 60.
    expect(duringOutage).toBeLessThanOrEqual(4 + 4 + 2);
    // Nothing exhausted its attempts on the outage: the failures before it opened are the only ones counted.
    const maxAttempt = Math.max(...crmOf(f).map((receipt) => receipt.body.attempt));
    expect(maxAttempt).toBeLessThanOrEqual(3);
    expect((await store.read('webhook:update_crm', Date.now(), 30_000)).state).toBe('closed');
  });

  it('dead-letters a task whose expiry passes while its destination is open as expired, saying since when', async () => {
    const f = await fleet('outage-expiry', {
      ...circuitEnv,
      CIRCUIT_COOLDOWN: '1m',
      TASK_UPDATE_CRM_EXPIRES_AFTER: '15s',
      WEBHOOK_TIMEOUT: '1s',
    });
    receiver.answer = () => ({ status: 503 });
    const ids = await enqueue(f, 8);
    await settledAll(f, ids, 40_000);
    const entries = await f.dlq.list({ types: ['update_crm'] });
    const expired = entries.filter((entry) => entry.reason === 'expired');
    expect(expired.length).toBeGreaterThan(0);
    expect(entries.filter((entry) => entry.reason === 'exhausted')).toEqual([]);
    for (const entry of expired) {
      expect(entry.lastError).toMatch(/destination webhook:update_crm unavailable since \d{4}-\d\d-\d\dT/);
    }
  });

  it('keeps its state across a worker restart (the state is in Redis, not in the process)', async () => {
    const f = await fleet('restart', circuitEnv);
    receiver.answer = () => ({ status: 503 });
    const ids = await enqueue(f, 6);
    const store = createDestinationStore(client, f.prefix);
    await waitUntil(
      () => store.read('webhook:update_crm', Date.now(), 30_000),
      (status) => status.state === 'open' || status.state === 'half_open',
      'the circuit to open',
    );
    await f.workers.shift()!.close();
    const before = await store.read('webhook:update_crm', Date.now(), 30_000);
    await f.start();
    const after = await store.read('webhook:update_crm', Date.now(), 30_000);
    expect(['open', 'half_open']).toContain(after.state);
    expect(after.since).toBe(before.since);
    receiver.answer = () => ({ status: 200 });
    await settledAll(f, ids);
  });
});

describe('operator holds and 410 Gone', () => {
  it('a manual open holds every job without using attempts until close, then delivers', async () => {
    // Jobs waiting on a hold with no end look again every CIRCUIT_COOLDOWN.
    const f = await fleet('manual', { TASK_UPDATE_CRM_ATTEMPTS: '1', CIRCUIT_COOLDOWN: '1s' });
    const store = createDestinationStore(client, f.prefix);
    await store.set('webhook:update_crm', { action: 'open', now: Date.now(), until: 0, reason: 'known incident' });
    const ids = await enqueue(f, 3);
    await waitUntil(
      () => f.events.filter((event) => event.result === 'postponed' && event.waitReason === 'circuit').length,
      (count) => count >= 3,
      'three jobs to wait on the open circuit',
    );
    expect(crmOf(f)).toHaveLength(0);
    await store.set('webhook:update_crm', { action: 'close', now: Date.now(), until: 0, reason: '' });
    const states = await settledAll(f, ids, 40_000);
    expect(states.every((state) => state === 'completed')).toBe(true);
  });

  it('410 Gone dead-letters the task as terminal and holds the destination until an operator closes it', async () => {
    const f = await fleet('gone', { CIRCUIT_COOLDOWN: '1s' });
    receiver.answer = () => ({ status: 410 });
    const [first] = await enqueue(f, 1);
    await settledAll(f, [first!]);
    const [entry] = await f.dlq.list({ types: ['update_crm'] });
    expect(entry?.reason).toBe('terminal');
    const store = createDestinationStore(client, f.prefix);
    const status = await store.read('webhook:update_crm', Date.now(), 30_000);
    expect(status).toMatchObject({ state: 'held', until: 0, manual: true });
    expect(status.reason).toMatch(/410/);
    // A later task waits; it is not sent to the gone endpoint.
    receiver.answer = () => ({ status: 200 });
    const later = `${f.prefix}-later`;
    await f.producer.conversationEnded(resolvedOutcome(later));
    await waitUntil(
      () => f.events.filter((event) => event.conversationId === later && event.result === 'postponed').length,
      (count) => count >= 1,
      'the later task to wait',
    );
    expect(crmOf(f).filter((receipt) => receipt.body.conversationId === later)).toHaveLength(0);
    await store.set('webhook:update_crm', { action: 'close', now: Date.now(), until: 0, reason: '' });
    await settledAll(f, [later], 40_000);
    expect(crmOf(f).filter((receipt) => receipt.body.conversationId === later)).toHaveLength(1);
  });
});

describe('signing-secret rotation', () => {
  it('signs with both secrets while WEBHOOK_PREVIOUS_SECRET is set; standardwebhooks verifies under either', async () => {
    const previous = `whsec_${Buffer.from('aftercall-previous-secret-0123').toString('base64')}`;
    const f = await fleet('rotation', { WEBHOOK_PREVIOUS_SECRET: previous });
    const ids = await enqueue(f, 1);
    await settledAll(f, ids);
    const [receipt] = crmOf(f);
    const signature = String(receipt!.headers['webhook-signature']);
    expect(signature.split(' ')).toHaveLength(2);
    const raw = JSON.stringify(receipt!.body);
    const headers = {
      'webhook-id': String(receipt!.headers['webhook-id']),
      'webhook-timestamp': String(receipt!.headers['webhook-timestamp']),
      'webhook-signature': signature,
    };
    expect(() => new Webhook(WEBHOOK_SECRET).verify(raw, headers)).not.toThrow();
    expect(() => new Webhook(previous).verify(raw, headers)).not.toThrow();
    const stranger = `whsec_${Buffer.from('some-other-secret-0123456789').toString('base64')}`;
    expect(() => new Webhook(stranger).verify(raw, headers)).toThrow();
  });
});

describe('a limit the destination states (ratelimit-* headers)', () => {
  it('is kept for the fleet: a process that has not seen the headers adopts it and is counted against it', async () => {
    const prefix = uniquePrefix('stated');
    cleanups.push(() => removePrefix(client, prefix));
    let now = Date.now();
    const store = createDestinationStore(client, prefix);
    const policyOf = () => {
      const policy = createDestinationPolicy({
        store,
        defaultHoldMs: 1_000,
        deliveryTimeoutMs: 1_000,
        trustClosedMs: 100,
        clock: () => now,
      });
      cleanups.push(() => policy.close());
      return policy;
    };
    const gate = (policy: ReturnType<typeof policyOf>) =>
      policy.acquire('resend', `job-${Math.random()}`, now + 3_600_000);
    const first = policyOf();
    const second = policyOf();
    // No limit of ours: both go, and the second trusts the closed destination for a moment.
    expect((await gate(first)).go).toBe(true);
    expect((await gate(second)).go).toBe(true);
    // Resend tells the first process its limit: 2 per second.
    first.learn('resend', { limit: 2, periodMs: 1_000 });
    now += 1_000;
    expect((await gate(first)).go).toBe(true);
    // The second has not seen the headers. Once its trust has ended it asks, and Redis
    // counts its grant against the stated limit and tells it the limit. (At 2/s grants are
    // spread, at most one per 100 ms.)
    now += 100;
    expect((await gate(second)).go).toBe(true);
    expect(second.limitOf('resend')).toEqual({ limit: 2, periodMs: 1_000 });
    // Two grants within the second: the next, from either process, waits.
    now += 100;
    expect(await gate(second)).toMatchObject({ go: false, reason: 'rate_limit' });
    expect(await gate(first)).toMatchObject({ go: false, reason: 'rate_limit' });
    // Operators see it as the limit in force.
    const status = await store.read('resend', now, 30_000);
    expect(status.stated).toEqual({ limit: 2, periodMs: 1_000 });
    // Not restated for 10 minutes, it lapses.
    expect((await store.read('resend', now + 600_001, 30_000)).stated).toBeUndefined();
  });
});

describe('trusting a closed destination for a moment (trustClosedMs)', () => {
  const HOUR = 3_600_000;
  /** A policy of one worker process, on its own clock, and the script calls Redis ran for it. */
  async function trusting(
    name: string,
    limits?: Record<string, { limit: number; periodMs: number }>,
    wrap: (store: DestinationStore) => DestinationStore = (store) => store,
  ) {
    const prefix = uniquePrefix(name);
    cleanups.push(() => removePrefix(client, prefix));
    let now = Date.now();
    const store = createDestinationStore(client, prefix);
    const policy = createDestinationPolicy({
      store: wrap(store),
      ...(limits && { limits }),
      defaultHoldMs: 1_000,
      deliveryTimeoutMs: 1_000,
      trustClosedMs: 100,
      clock: () => now,
    });
    cleanups.push(() => policy.close());
    const gate = () => policy.acquire('webhook:update_crm', `job-${Math.random()}`, now + HOUR);
    return {
      prefix,
      store,
      policy,
      gate,
      advance: (ms: number) => {
        now += ms;
      },
      now: () => now,
    };
  }

  it('skips the round trip while trusted, and sees a state set elsewhere once the trust ends', async () => {
    const p = await trusting('trust');
    expect(await p.gate()).toEqual({ go: true, probe: false });
    // Another process (or an operator) opens the destination.
    await p.store.set('webhook:update_crm', { action: 'open', now: p.now(), until: 0, reason: 'incident' });
    // Within the trust window the process does not ask: it goes.
    p.advance(99);
    expect(await p.gate()).toEqual({ go: true, probe: false });
    // Once it has passed, it asks Redis again and waits.
    p.advance(1);
    expect(await p.gate()).toMatchObject({ go: false, reason: 'circuit' });
    // And it keeps asking while the destination is not closed.
    expect(await p.gate()).toMatchObject({ go: false, reason: 'circuit' });
  });

  it('ends the trust at once on its own failure report, 429 hold or 410', async () => {
    const p = await trusting('trust-failure');
    expect((await p.gate()).go).toBe(true);
    await p.store.set('webhook:update_crm', { action: 'open', now: p.now(), until: 0, reason: 'incident' });
    await p.policy.report('webhook:update_crm', 'failure', false);
    expect(await p.gate()).toMatchObject({ go: false, reason: 'circuit' });

    const q = await trusting('trust-hold');
    expect((await q.gate()).go).toBe(true);
    await q.policy.hold('webhook:update_crm', 5_000, 'HTTP 429');
    expect(await q.gate()).toMatchObject({ go: false, reason: 'circuit' });
  });

  it('jobs starting while the question is in flight share its answer: one script call for a burst', async () => {
    const p = await trusting('trust-burst');
    // The real store, counting the calls the policy makes to ask it.
    let asked = 0;
    const counting = {
      ...p.store,
      acquireMany: (...args: Parameters<typeof p.store.acquireMany>) => {
        asked += 1;
        return p.store.acquireMany(...args);
      },
    };
    const policy = createDestinationPolicy({
      store: counting,
      defaultHoldMs: 1_000,
      deliveryTimeoutMs: 1_000,
      trustClosedMs: 100,
    });
    cleanups.push(() => policy.close());
    const gates = await Promise.all(
      Array.from({ length: 50 }, (_, i) => policy.acquire('webhook:update_crm', `job-${i}`, Date.now() + HOUR)),
    );
    expect(gates.every((gate) => gate.go)).toBe(true);
    expect(asked).toBe(1);
    // Without trust, each job is asked for: the first at once, those starting while its call is in flight in the next.
    const plain = createDestinationPolicy({ store: counting, defaultHoldMs: 1_000, deliveryTimeoutMs: 1_000 });
    asked = 0;
    const plainGates = await Promise.all(
      Array.from({ length: 5 }, (_, i) => plain.acquire('webhook:update_crm', `job-${i}`, Date.now() + HOUR)),
    );
    expect(plainGates.every((gate) => gate.go)).toBe(true);
    expect(asked).toBe(2);
  });

  it('asks for the jobs that start while its call is in flight in one call, each answered as by a call of its own', async () => {
    // 100/s: at most 10 grants in any 100 ms (the spreading rule), so of 20 jobs at once 10 go and 10 wait their turns.
    const limits = { 'webhook:update_crm': { limit: 100, periodMs: 1_000 } };
    const calls: number[] = [];
    const p = await trusting('batch-limit', limits, (real) => ({
      ...real,
      acquireMany: (...args: Parameters<typeof real.acquireMany>) => {
        calls.push(args[2].length);
        return real.acquireMany(...args);
      },
    }));
    const together = await Promise.all(Array.from({ length: 20 }, () => p.gate()));
    expect(calls).toEqual([1, 19]);
    // The same 20 jobs asked one after another, a call each, at the same moment on a destination of their own.
    const q = await trusting('batch-limit-alone', limits);
    const alone = [];
    for (let i = 0; i < 20; i += 1) alone.push(await q.gate());
    const outcome = (gate: (typeof together)[number]) =>
      gate.go ? 'go' : `${gate.reason} ${'waitMs' in gate ? gate.waitMs : 'expired'}`;
    expect(together.map(outcome)).toEqual(alone.map(outcome));
    expect(together.filter((gate) => gate.go)).toHaveLength(10);
    for (const gate of together.filter((gate) => !gate.go))
      expect(gate).toMatchObject({ reason: 'rate_limit', expire: false });
    // Redis kept 10 grants and 10 turns, as the calls of their own left it.
    for (const [prefix, other] of [[p.prefix, q.prefix]]) {
      const [, grants, , queue] = destinationKeys(prefix!, 'webhook:update_crm');
      const [, otherGrants, , otherQueue] = destinationKeys(other!, 'webhook:update_crm');
      expect(await client.zcard(grants)).toBe(10);
      expect(await client.zcard(otherGrants)).toBe(10);
      expect(await client.zcard(queue)).toBe(await client.zcard(otherQueue));
    }
    // Saturated (jobs were told to wait): for a period, each job is asked for on its own, so a
    // granted job's request is not held up behind the waits answered with it.
    calls.length = 0;
    await Promise.all(Array.from({ length: 4 }, () => p.gate()));
    expect(calls).toEqual([1, 1, 1, 1]);
    p.advance(1_100);
    calls.length = 0;
    await Promise.all(Array.from({ length: 4 }, () => p.gate()));
    expect(calls).toEqual([1, 3]);
    // A limit under 100 per period is always asked for job by job.
    const low: number[] = [];
    const r = await trusting('batch-low', { 'webhook:update_crm': { limit: 99, periodMs: 1_000 } }, (real) => ({
      ...real,
      acquireMany: (...args: Parameters<typeof real.acquireMany>) => {
        low.push(args[2].length);
        return real.acquireMany(...args);
      },
    }));
    await Promise.all(Array.from({ length: 3 }, () => r.gate()));
    expect(low).toEqual([1, 1, 1]);
  });

  /** A trusting policy over the real store, counting its questions (acquire) and renewals (reads). */
  async function counted(name: string) {
    const calls = { acquire: 0, renew: 0 };
    let renewed: Promise<boolean> = Promise.resolve(false);
    const p = await trusting(name, undefined, (real) => ({
      ...real,
      acquireMany: (...args: Parameters<typeof real.acquireMany>) => {
        calls.acquire += 1;
        return real.acquireMany(...args);
      },
      closedUnlimited: (...args: Parameters<typeof real.closedUnlimited>) => {
        calls.renew += 1;
        renewed = real.closedUnlimited(...args);
        return renewed;
      },
    }));
    return {
      ...p,
      calls,
      // The renewal's answer, and the turn in which the policy takes it in.
      renewal: async () => {
        await renewed;
        await new Promise((resolve) => setImmediate(resolve));
      },
    };
  }

  it('renews the trust in its last quarter, in the background: no job waits when it would have ended', async () => {
    const p = await counted('trust-renew');
    expect(await p.gate()).toEqual({ go: true, probe: false });
    expect(p.calls).toEqual({ acquire: 1, renew: 0 });
    // Three quarters in: still trusted, so the job goes, and one read renews the trust.
    p.advance(60);
    expect(await p.gate()).toEqual({ go: true, probe: false });
    expect(p.calls).toEqual({ acquire: 1, renew: 0 });
    p.advance(20);
    expect(await p.gate()).toEqual({ go: true, probe: false });
    expect(await p.gate()).toEqual({ go: true, probe: false });
    expect(p.calls).toEqual({ acquire: 1, renew: 1 });
    await p.renewal();
    // Past the first trust's end (100 ms), within the renewed one (80 + 100): no question.
    p.advance(40);
    expect(await p.gate()).toEqual({ go: true, probe: false });
    expect(p.calls.acquire).toBe(1);
    // Without renewals it ends: a job asks again.
    p.advance(100);
    expect(await p.gate()).toEqual({ go: true, probe: false });
    expect(p.calls.acquire).toBe(2);
  });

  it('a renewal that reads another state ends the trust, and one overtaken by a failure report does not renew it', async () => {
    const p = await counted('trust-renew-open');
    expect((await p.gate()).go).toBe(true);
    await p.store.set('webhook:update_crm', { action: 'open', now: p.now(), until: 0, reason: 'incident' });
    p.advance(80);
    expect((await p.gate()).go).toBe(true);
    await p.renewal();
    // The read saw the circuit open: the next job asks, and waits.
    expect(await p.gate()).toMatchObject({ go: false, reason: 'circuit' });

    const q = await counted('trust-renew-race');
    expect((await q.gate()).go).toBe(true);
    q.advance(80);
    expect((await q.gate()).go).toBe(true);
    // A failure reported while the renewal's read (which will answer "closed") is in flight.
    await q.policy.report('webhook:update_crm', 'failure', false);
    await q.renewal();
    expect(q.calls.renew).toBe(1);
    // The trust ended with the failure and stays ended: the next job asks.
    expect((await q.gate()).go).toBe(true);
    expect(q.calls.acquire).toBe(2);
  });

  it('never trusts a destination with a rate limit: every grant is counted in Redis', async () => {
    // 2 per minute: grants are spread (at most 1 in any 6 s), so the second, asked at once, waits.
    const p = await trusting('trust-limit', { 'webhook:update_crm': { limit: 2, periodMs: 60_000 } });
    expect((await p.gate()).go).toBe(true);
    expect(await p.gate()).toMatchObject({ go: false, reason: 'rate_limit' });
  });
});
