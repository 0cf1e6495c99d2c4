import { Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepExpiredJobs } from '../src/worker/expiry-sweeper.js';
import { createProducer } from '../src/producer/producer.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { queueName } from '../src/redis/keys.js';
import { conversationStatus } from '../src/ops/status.js';
import { startChildWorker, type ChildWorker } from './helpers/child-worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { redis, REDIS_URL, removePrefix, testEnv, uniquePrefix } from './helpers/redis.js';
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
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
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

  it('costs calls by expired jobs, not by backlog', async () => {
    const prefix = fresh('sweep-cost');
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    const now = Date.now();
    for (let i = 0; i < 300; i += 1)
      await producer.conversationEnded(resolvedOutcome(`live-${i}`, now, { ticket: undefined }));
    const result = await sweepExpiredJobs(client, { prefix, now: now + HOUR, batchSize: 50 });
    expect(result.expired.update_crm).toBe(0);
    expect(result.calls).toBe(6); // one per type, whatever the backlog
    const expired = await sweepExpiredJobs(client, { prefix, now: now + 5 * HOUR, batchSize: 50 });
    expect(expired.expired.update_crm).toBe(300);
    expect(expired.calls).toBe(5 + 300 / 50);
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
      redisUrl: REDIS_URL,
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
    // both processes took part in the sweeping over time, one sweep at a time
    for (const worker of workers) worker.kill('SIGTERM');
    for (const worker of workers) expect(await worker.exited).toEqual({ code: 0, signal: null });
    const sweeps = workers.flatMap((worker) => worker.logs.filter((line) => line.msg === 'expiry sweep'));
    expect(sweeps.reduce((sum, line) => sum + Number(line.expired), 0)).toBe(total);
    await producer.close();
  });

  it('is safe when two sweeps run at the same moment', async () => {
    const prefix = fresh('sweep-concurrent');
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
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
    const regular = createProducer({ redisUrl: REDIS_URL, prefix });
    const hasty = createProducer({
      redisUrl: REDIS_URL,
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
