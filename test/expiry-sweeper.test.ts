import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryableDeliveryError } from '../src/delivery/errors.js';
import { sweepExpiredJobs } from '../src/worker/expiry-sweeper.js';
import { startWorker } from '../src/worker/worker.js';
import { createProducer } from '../src/producer/producer.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { queueName, typeKeys } from '../src/redis/keys.js';
import { settleConversations } from '../src/redis/scripts.js';
import { conversationStatus } from '../src/ops/status.js';
import { startChildWorker, type ChildWorker } from './helpers/child-worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { pendingJobs, pendingPastExpiry } from './helpers/pending.js';
import { redis, REDIS_URL, removePrefix, TEST_REDIS, testConfig, testEnv, uniquePrefix } from './helpers/redis.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const client = redis();
const prefixes: string[] = [];
let receiver: WebhookReceiver;
const HOUR = 3_600_000;

beforeAll(async () => {
  receiver = await startReceiver();
});

afterAll(async () => {
  await receiver.close();
  for (const prefix of prefixes) await removePrefix(client, prefix);
  client.disconnect();
});

function fresh(name: string) {
  const prefix = uniquePrefix(name);
  prefixes.push(prefix);
  return prefix;
}

describe('expiry sweeper', () => {
  it('dead-letters expired waiting and delayed jobs, never an active one, and drops entries of finished jobs', async () => {
    const prefix = fresh('sweep');
    const producer = createProducer({ redis: TEST_REDIS, prefix });
    const now = Date.now();
    // waiting: update_crm and update_ticket; delayed: reminder and survey
    await producer.conversationEnded(bookedOutcome('s1', now, { ticket: { id: 'T' } }));
    await producer.conversationEnded(resolvedOutcome('s2', now, { ticket: undefined }));
    // the oldest CRM job (s1's) becomes active in a worker that holds it
    const holder = new Worker(queueName('update_crm'), null, { connection: redis(), prefix });
    const active = await holder.getNextJob('holder-token');
    expect(active?.data.conversationId).toBe('s1'); // the oldest first
    const dlq = new DeadLetterQueue(client, prefix);

    const early = await sweepExpiredJobs(client, { prefix, now });
    expect(Object.values(early.expired).reduce((a, b) => a + b, 0)).toBe(0);

    const late = await sweepExpiredJobs(client, { prefix, now: now + 100 * HOUR });
    expect(late.expired).toMatchObject({
      send_email: 1,
      update_crm: 1,
      update_ticket: 1,
      schedule_reminder: 1,
      follow_up_survey: 1,
    });
    const entries = await dlq.list();
    expect(entries.map((entry) => `${entry.type}/${entry.conversationId}/${entry.reason}`).sort()).toEqual([
      'follow_up_survey/s1/expired',
      'schedule_reminder/s1/expired',
      'send_email/s1/expired',
      'update_crm/s2/expired',
      'update_ticket/s1/expired',
    ]);
    // the active job was not touched
    expect(await active!.getState()).toBe('active');
    expect((await conversationStatus(client, prefix, 's1')).find((entry) => entry.type === 'update_crm')?.state).toBe(
      'active',
    );
    // once it completes, the next sweep drops its index entry
    await active!.moveToCompleted({ ok: true }, 'holder-token', false);
    const after = await sweepExpiredJobs(client, { prefix, now: now + 200 * HOUR });
    expect(after.dropped).toBeGreaterThanOrEqual(1);
    expect(await client.zcard(`${prefix}:{update_crm}:expiry`)).toBe(0);
    expect((await dlq.counts()).update_crm).toEqual({ expired: 1, exhausted: 0, terminal: 0, invalid: 0 });
    await holder.close();
    await producer.close();
  });

  it('costs calls by expired jobs, not by backlog (commands counted on the wire)', async () => {
    const prefix = fresh('sweep-cost');
    // Commands are counted on one connection to one server: standalone Redis, whichever the backend.
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    const now = Date.now();
    for (let i = 0; i < 300; i += 1)
      await producer.conversationEnded(resolvedOutcome(`live-${i}`, now, { ticket: undefined }));
    // The sweeping connection goes through a TCP proxy that reads each command it sends.
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    const counted = new Redis(proxy.url, { maxRetriesPerRequest: null });
    try {
      // once on an empty prefix first: connecting and loading the script are not the sweep's cost
      await sweepExpiredJobs(counted, { prefix: fresh('sweep-cost-warm-up'), now, batchSize: 50 });
      await settleConversations(counted, typeKeys(fresh('sweep-cost-warm-up'), 'update_crm'), {
        items: [],
        ttl: 1_000,
      });
      let from = proxy.chunks.length;
      const result = await sweepExpiredJobs(counted, { prefix, now: now + HOUR, batchSize: 50 });
      expect(result.expired.update_crm).toBe(0);
      // one script call per type, whatever the backlog, and nothing else
      expect(proxy.commands(from)).toEqual(Array(6).fill('EVALSHA'));
      expect(result.calls).toBe(6);
      from = proxy.chunks.length;
      const expired = await sweepExpiredJobs(counted, { prefix, now: now + 5 * HOUR, batchSize: 50 });
      expect(expired.expired.update_crm).toBe(300);
      // and one more per batch of 50 expired jobs, and one counting their conversations' follow-ups
      // down (one per anchor type: update_crm's for all of them; conversation-settlement.ts)
      expect(proxy.commands(from)).toEqual(Array(5 + 300 / 50 + 1).fill('EVALSHA'));
      expect(expired.calls).toBe(5 + 300 / 50);
    } finally {
      counted.disconnect();
      await proxy.close();
      await producer.close();
    }
  });

  it('leaves no waiting, delayed or retrying job past its expiry after a sweep at an injected now', async () => {
    const prefix = fresh('sweep-structure');
    const producer = createProducer({ redis: TEST_REDIS, prefix });
    const now = Date.now();
    // waiting: send_email (30 min), update_crm (4 h), route_callback (1 h); delayed:
    // schedule_reminder (expires 70 h on), follow_up_survey (48 h)
    await producer.conversationEnded(bookedOutcome('st-booked', now));
    await producer.conversationEnded({
      ...resolvedOutcome('st-callback', now, { ticket: undefined }),
      outcome: 'callback_requested',
      callback: { reason: 'call me', priority: 'high' },
    });
    // retrying: an update_ticket (24 h) whose first attempt failed and waits 10 minutes
    const worker = await startWorker({
      config: testConfig(prefix, receiver.url),
      queues: ['update_ticket'],
      sweeper: false,
      ports: {
        update_ticket: {
          provider: 'webhook',
          deliver: async () => {
            throw new RetryableDeliveryError('webhook answered HTTP 503', {
              provider: 'webhook',
              status: 503,
              retryAfterMs: 600_000,
            });
          },
        },
      },
    });
    await producer.conversationEnded(resolvedOutcome('st-ticket', now, { ticket: { id: 'T-9' } }));
    await waitUntil(
      () => client.zcard(`${prefix}:{update_ticket}:retrying`),
      (count) => count === 1,
      'the ticket update to wait for its retry',
    );
    await worker.close();
    const states = async () => (await pendingJobs(client, prefix)).map((job) => `${job.type}/${job.state}`).sort();
    expect(await states()).toEqual([
      'follow_up_survey/delayed',
      'route_callback/waiting',
      'schedule_reminder/delayed',
      'send_email/waiting',
      'update_crm/waiting',
      'update_crm/waiting',
      'update_crm/waiting',
      'update_ticket/retrying',
    ]);

    for (const [at, left] of [
      [now + 5 * HOUR, ['follow_up_survey/delayed', 'schedule_reminder/delayed', 'update_ticket/retrying']],
      [now + 30 * HOUR, ['follow_up_survey/delayed', 'schedule_reminder/delayed']],
      [now + 60 * HOUR, ['schedule_reminder/delayed']],
      [now + 100 * HOUR, []],
    ] as const) {
      await sweepExpiredJobs(client, { prefix, now: at });
      expect(await pendingPastExpiry(client, prefix, at)).toEqual([]);
      expect(await states()).toEqual(left);
    }
    await producer.close();
  });

  it('with two worker processes racing, dead-letters each expired job exactly once and never calls the provider', async () => {
    const prefix = fresh('sweep-race');
    const env = testEnv(prefix, receiver.url, { SWEEP_INTERVAL: '200ms' });
    // The workers serve route_callback only: nothing picks the survey and ticket jobs up.
    const workers: ChildWorker[] = [
      startChildWorker(env, ['--queues', 'route_callback']),
      startChildWorker(env, ['--queues', 'route_callback']),
    ];
    // Both running (and stoppable with SIGTERM) before the jobs exist: on a loaded machine
    // one may still be starting when the other has swept everything.
    for (const worker of workers) await worker.waitForLog((line) => line.msg === 'worker started');
    const producer = createProducer({
      redis: TEST_REDIS,
      prefix,
      tasks: {
        follow_up_survey: { settings: { delay: HOUR, expiresAfter: 2_500 } },
        update_ticket: { settings: { expiresAfter: 2_500 } },
      },
    });
    const now = Date.now();
    const total = 40;
    for (let i = 0; i < total / 2; i += 1) {
      await producer.conversationEnded(resolvedOutcome(`race-${i}`, now, { surveyOptIn: true }));
    }
    const dlq = new DeadLetterQueue(client, prefix);
    await waitUntil(
      () => dlq.counts(['follow_up_survey', 'update_ticket']),
      (counts) => counts.follow_up_survey.expired + counts.update_ticket.expired === total,
      'every expired job in the dead-letter queue',
    );
    const entries = await dlq.list({ types: ['follow_up_survey', 'update_ticket'] });
    expect(entries).toHaveLength(total);
    expect(new Set(entries.map((entry) => `${entry.type}/${entry.jobId}`)).size).toBe(total);
    expect(entries.every((entry) => entry.reason === 'expired' && entry.attempts === 0)).toBe(true);
    expect(await client.zcard(`${prefix}:{follow_up_survey}:failed`)).toBe(total / 2);
    expect(receiver.receipts.filter((receipt) => receipt.body.conversationId.startsWith('race-'))).toHaveLength(0);
    // Both processes serve the sweep (the maintenance queue runs one sweep at a time, on
    // whichever process takes it): each logs sweeps of its own, and the jobs their sweeps
    // dead-lettered add up to the total, each once.
    const sweepsOf = (worker: ChildWorker) => worker.logs.filter((line) => line.msg === 'expiry sweep');
    await waitUntil(
      () => workers.map((worker) => sweepsOf(worker).length),
      (counts) => counts.every((count) => count > 0),
      'a sweep by each process',
    );
    for (const worker of workers) worker.kill('SIGTERM');
    for (const worker of workers) expect(await worker.exited).toEqual({ code: 0, signal: null });
    const sweeps = workers.flatMap(sweepsOf);
    expect(sweeps.reduce((sum, line) => sum + Number(line.expired), 0)).toBe(total);
    await producer.close();
  });

  it('is safe when two sweeps run at the same moment', async () => {
    const prefix = fresh('sweep-concurrent');
    const producer = createProducer({ redis: TEST_REDIS, prefix });
    const now = Date.now();
    for (let i = 0; i < 100; i += 1)
      await producer.conversationEnded(resolvedOutcome(`c-${i}`, now, { ticket: undefined }));
    const other = redis();
    const [a, b] = await Promise.all([
      sweepExpiredJobs(client, { prefix, now: now + 5 * HOUR, batchSize: 7 }),
      sweepExpiredJobs(other, { prefix, now: now + 5 * HOUR, batchSize: 7 }),
    ]);
    expect(a.expired.update_crm + b.expired.update_crm).toBe(100);
    expect(await client.zcard(`${prefix}:{update_crm}:failed`)).toBe(100);
    expect(await client.llen(`${prefix}:{update_crm}:wait`)).toBe(0);
    expect(Number(await client.hget(`${prefix}:{update_crm}:dead-letter-counts`, 'expired'))).toBe(100);
    other.disconnect();
    await producer.close();
  });
});

describe('expiry sweeper in a long backlog', () => {
  it('leaves an expired job deeper than its search limit (which bounds each call) to the workers, and looks at it again later', async () => {
    const prefix = fresh('sweep-deep');
    const regular = createProducer({ redis: TEST_REDIS, prefix });
    const hasty = createProducer({
      redis: TEST_REDIS,
      prefix,
      tasks: { update_crm: { settings: { expiresAfter: 60_000 } } },
    });
    const now = Date.now();
    const fill = async (from: number) => {
      const pending = [];
      for (let i = from; i < from + 1_100; i += 1)
        pending.push(regular.conversationEnded(resolvedOutcome(`filler-${i}`, now, { ticket: undefined })));
      await Promise.all(pending);
    };
    await hasty.conversationEnded(resolvedOutcome('oldest-hasty', now, { ticket: undefined }));
    // Connected and its scripts loaded before the burst: on a fresh server (the cluster
    // project's) 1,100 cold calls would each send the whole script text (EVALSHA, NOSCRIPT, EVAL).
    await regular.conversationEnded(resolvedOutcome('warm-up', now, { ticket: undefined }));
    await fill(0);
    await hasty.conversationEnded(resolvedOutcome('middle-hasty', now, { ticket: undefined }));
    await fill(1_100);
    await hasty.conversationEnded(resolvedOutcome('newest-hasty', now, { ticket: undefined }));
    const result = await sweepExpiredJobs(client, { prefix, now: now + 10 * 60_000 });
    expect(result.expired.update_crm).toBe(2); // near either end of the wait list
    const states = Object.fromEntries(
      await Promise.all(
        ['oldest-hasty', 'middle-hasty', 'newest-hasty'].map(async (id) => [
          id,
          (await conversationStatus(client, prefix, id))[0]!.state,
        ]),
      ),
    );
    expect(states).toEqual({
      'oldest-hasty': 'dead_lettered',
      'middle-hasty': 'waiting',
      'newest-hasty': 'dead_lettered',
    });
    // the one in the middle is looked at again later, not forgotten
    expect(Number(await client.zscore(`${prefix}:{update_crm}:expiry`, 'middle-hasty%3Aupdate_crm'))).toBeGreaterThan(
      now + 10 * 60_000,
    );
    await regular.close();
    await hasty.close();
  });
});
