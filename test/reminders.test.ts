import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { queueName } from '../src/redis/keys.js';
import { conversationStatus } from '../src/ops/status.js';
import { startWorker } from '../src/worker/worker.js';
import { redis, removePrefix, TEST_REDIS, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('reminders');
const client = redis();
const producer = createProducer({ redis: TEST_REDIS, prefix });
const reminders = new Queue(queueName('schedule_reminder'), { connection: client, prefix });
const HOUR = 3_600_000;
const now = Date.now();
const iso = (ms: number) => new Date(ms).toISOString();
const customer = { id: 'cus', name: 'Ada', email: 'ada@example.com' };
const outcome = (
  conversationId: string,
  kind: 'booked' | 'rescheduled' | 'cancelled',
  startsAt: number,
  endedAt: number,
) => ({
  conversationId,
  endedAt: iso(endedAt),
  outcome: kind,
  customer,
  booking: { id: 'bk-42', startsAt: iso(startsAt) },
});
const reminderOf = (result: { tasks: { type: string; jobId: string }[] }) =>
  result.tasks.find((task) => task.type === 'schedule_reminder');
const reminderStatus = async (conversationId: string) =>
  (await conversationStatus(client, prefix, conversationId)).find((entry) => entry.type === 'schedule_reminder');

beforeAll(async () => {
  await removePrefix(client, prefix);
});

afterAll(async () => {
  await reminders.close();
  await producer.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('reminders belong to the booking', () => {
  const t1 = now + 72 * HOUR;
  const t2 = now + 96 * HOUR;

  it('booked schedules the reminder a day before the appointment', async () => {
    const booked = await producer.conversationEnded(outcome('A', 'booked', t1, now - 3_000));
    const job = await reminders.getJob(reminderOf(booked)!.jobId);
    expect(await job!.getState()).toBe('delayed');
    expect(job!.data.runAt).toBe(t1 - 24 * HOUR);
    expect(await reminderStatus('A')).toMatchObject({
      state: 'scheduled',
      runAt: iso(t1 - 24 * HOUR),
      expiresAt: iso(t1 - 2 * HOUR),
    });
  });

  it('rescheduled from a later conversation removes the old reminder and schedules the new one', async () => {
    const old = (await reminders.getJobs(['delayed']))[0]!;
    const moved = await producer.conversationEnded(outcome('B', 'rescheduled', t2, now - 2_000));
    const reminder = reminderOf(moved)!;
    expect(reminder.jobId).not.toBe(old.id);
    expect(await reminders.getJob(old.id!)).toBeUndefined();
    expect((await reminders.getJobs(['delayed'])).map((job) => job.id)).toEqual([reminder.jobId]);
    expect((await reminders.getJob(reminder.jobId))!.data.runAt).toBe(t2 - 24 * HOUR);
    expect(await reminderStatus('A')).toMatchObject({ state: 'replaced', jobId: old.id });
    expect(await reminderStatus('B')).toMatchObject({ state: 'scheduled', runAt: iso(t2 - 24 * HOUR) });
    // the old reminder's index entry went with it
    expect(await client.zscore(`${prefix}:{schedule_reminder}:expiry`, old.id!)).toBeNull();
  });

  it('a repeated older outcome does not bring the old reminder back', async () => {
    const replay = await producer.conversationEnded(outcome('A', 'booked', t1, now - 3_000));
    expect(reminderOf(replay)).toBeUndefined();
    expect(replay.skipped).toEqual([{ type: 'schedule_reminder', reason: 'superseded' }]);
    expect((await reminders.getJobs(['delayed', 'waiting'])).length).toBe(1);
    const again = await producer.conversationEnded(outcome('B', 'rescheduled', t2, now - 2_000));
    expect(reminderOf(again)).toMatchObject({ created: false });
  });

  it('cancelled removes the pending reminder, whichever conversation it came from', async () => {
    await producer.conversationEnded(outcome('C', 'cancelled', t2, now - 1_000));
    expect(await reminders.getJobs(['delayed', 'waiting'])).toEqual([]);
    expect(await reminderStatus('B')).toMatchObject({ state: 'cancelled' });
    expect(await reminderStatus('C')).toBeUndefined();
    // a late repeat of the rescheduling does not revive it
    const late = await producer.conversationEnded(outcome('B', 'rescheduled', t2, now - 2_000));
    expect(late.skipped).toEqual([{ type: 'schedule_reminder', reason: 'superseded' }]);
    expect(await reminders.getJobs(['delayed', 'waiting'])).toEqual([]);
  });

  it('a reschedule to a time too close for a reminder still removes the old one', async () => {
    const booking = (
      id: string,
      startsAt: number,
      conversationId: string,
      kind: 'booked' | 'rescheduled',
      endedAt: number,
    ) => ({
      ...outcome(conversationId, kind, startsAt, endedAt),
      booking: { id, startsAt: iso(startsAt) },
    });
    await producer.conversationEnded(booking('bk-7', now + 48 * HOUR, 'D', 'booked', now - 2_000));
    expect((await reminders.getJobs(['delayed'])).length).toBe(1);
    const soon = await producer.conversationEnded(booking('bk-7', now + HOUR, 'E', 'rescheduled', now - 1_000));
    expect(soon.skipped).toEqual([{ type: 'schedule_reminder', reason: 'expired' }]);
    expect(await reminders.getJobs(['delayed', 'waiting'])).toEqual([]);
    expect(await reminderStatus('D')).toMatchObject({ state: 'replaced' });
  });

  it("a worker does not deliver a reminder that stopped being its booking's current one", async () => {
    const receiver = await startReceiver();
    const result = await producer.conversationEnded({
      ...outcome('F', 'booked', now + 10 * HOUR, now - 1_000),
      booking: { id: 'bk-9', startsAt: iso(now + 10 * HOUR) },
    });
    const reminder = reminderOf(result)!;
    // As if a reschedule had claimed the booking while this job was being picked up.
    await client.hset(`${prefix}:{schedule_reminder}:scope:bk-9`, 'jobId', 'someone-else');
    const worker = await startWorker({
      config: testConfig(prefix, receiver.url),
      queues: ['schedule_reminder'],
      sweeper: false,
    });
    await waitUntil(
      () => reminderStatus('F'),
      (status) => status?.state === 'replaced',
      'the reminder to be superseded',
    );
    expect(receiver.receipts).toHaveLength(0);
    expect((await reminders.getJob(reminder.jobId))!.returnvalue).toEqual({ superseded: true });
    await worker.close();
    await receiver.close();
  });
});
