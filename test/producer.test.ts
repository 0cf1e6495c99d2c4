import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer, RedisUnavailableError } from '../src/producer/producer.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { queueName } from '../src/redis/keys.js';
import { OutcomeValidationError } from '../src/contract/validation-error.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { keysWithPrefix, redis, REDIS_URL, removePrefix, TEST_REDIS, uniquePrefix } from './helpers/redis.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

const prefix = uniquePrefix('producer');
const client = redis();
const producer = createProducer({ redis: TEST_REDIS, prefix });

afterAll(async () => {
  await producer.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const queue = (type: string) => new Queue(queueName(type), { connection: client, prefix });

describe('producer', () => {
  it('turns an outcome into jobs, one queue per type, and names them', async () => {
    const result = await producer.conversationEnded(bookedOutcome('p:1/é x'));
    expect(result.conversationId).toBe('p:1/é x');
    expect(result.skipped).toEqual([]);
    expect(result.tasks.map((task) => task.type)).toEqual([
      'send_email',
      'update_crm',
      'schedule_reminder',
      'follow_up_survey',
    ]);
    for (const task of result.tasks) {
      expect(task.created).toBe(true);
      expect(task.jobId).not.toContain(':');
      const q = queue(task.type);
      const job = await q.getJob(task.jobId);
      expect(job?.data).toMatchObject({
        type: task.type,
        conversationId: 'p:1/é x',
        idempotencyKey: task.idempotencyKey,
      });
      expect(job?.opts).toMatchObject({
        attempts: task.type === 'update_crm' ? 5 : 3,
        backoff: { type: 'aftercall' },
        removeOnFail: false,
        removeOnComplete: { age: 86_400 },
      });
      expect(await job?.getState()).toBe(
        task.type === 'schedule_reminder' || task.type === 'follow_up_survey' ? 'delayed' : 'waiting',
      );
      expect(await client.zscore(`${prefix}:${queueName(task.type)}:expiry`, task.jobId)).toBe(
        String(Date.parse(task.expiresAt)),
      );
      await q.close();
    }
  });

  it('sends the whole plan in one round trip', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    const viaProxy = createProducer({ redisUrl: proxy.url, prefix });
    try {
      await viaProxy.conversationEnded(resolvedOutcome('warm-up')); // connection set-up and script loading
      for (const id of ['rt-1', 'rt-2', 'rt-3']) {
        const from = proxy.chunks.length;
        const result = await viaProxy.conversationEnded(bookedOutcome(id, Date.now(), { ticket: { id: 'T' } }));
        expect(result.tasks).toHaveLength(5);
        if (proxy.roundTrips(from) !== 1) console.log(JSON.stringify(proxy.chunks.slice(from), null, 1));
        expect(proxy.roundTrips(from)).toBe(1);
      }
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('creates one job per task when the same outcome arrives concurrently', async () => {
    const outcome = bookedOutcome('dup-concurrent');
    const results = await Promise.all(Array.from({ length: 8 }, () => producer.conversationEnded(outcome)));
    for (const [index, task] of results[0]!.tasks.entries()) {
      const created = results.filter((result) => result.tasks[index]!.created).length;
      expect(created).toBe(1);
      expect(new Set(results.map((result) => result.tasks[index]!.jobId))).toEqual(new Set([task.jobId]));
    }
    const emailJobs = await queue('send_email').getJobs(['waiting', 'delayed', 'active', 'completed', 'failed']);
    expect(emailJobs.filter((job) => job.data.conversationId === 'dup-concurrent')).toHaveLength(1);
    // Tasks created are BullMQ's job counter (bullmq-compat.ts): one add per created job, none for a repeat.
    expect(Number(await client.get(`${prefix}:{send_email}:id`))).toBe(
      (await queue('send_email').getJobs(['waiting', 'delayed', 'active', 'completed', 'failed'])).length,
    );
  });

  it('names the existing jobs when an outcome is repeated after they finished or were dead-lettered', async () => {
    const outcome = resolvedOutcome('dup-later');
    const first = await producer.conversationEnded(outcome);
    const crm = first.tasks.find((task) => task.type === 'update_crm')!;
    // Finish one job and dead-letter another, as a worker would.
    const crmQueue = queue('update_crm');
    const crmJob = (await crmQueue.getJob(crm.jobId))!;
    await client.lrem(`${prefix}:{update_crm}:wait`, 0, crm.jobId);
    await client.zadd(`${prefix}:{update_crm}:completed`, Date.now(), crm.jobId);
    await client.hset(`${prefix}:{update_crm}:${crm.jobId}`, 'finishedOn', Date.now(), 'returnvalue', '{}');
    const ticket = first.tasks.find((task) => task.type === 'update_ticket')!;
    await client.lrem(`${prefix}:{update_ticket}:wait`, 0, ticket.jobId);
    await client.zadd(`${prefix}:{update_ticket}:failed`, Date.now(), ticket.jobId);
    await client.hset(
      `${prefix}:{update_ticket}:${ticket.jobId}`,
      'finishedOn',
      Date.now(),
      'deadLetterReason',
      'terminal',
    );

    const again = await producer.conversationEnded({ ...outcome });
    expect(again.tasks.map((task) => [task.type, task.jobId, task.created])).toEqual(
      first.tasks.map((task) => [task.type, task.jobId, false]),
    );
    expect(again.tasks.map((task) => task.expiresAt)).toEqual(first.tasks.map((task) => task.expiresAt));
    expect(await crmJob.getState()).toBe('completed');
    expect(await (await queue('update_ticket').getJob(ticket.jobId))!.getState()).toBe('failed');
    expect(await client.lpos(`${prefix}:{update_crm}:wait`, crm.jobId)).toBeNull();
    await crmQueue.close();
  });

  it('dead-letters a task that is already expired when enqueued, with reason expired', async () => {
    const now = Date.now();
    const late = bookedOutcome('late', now, { endedAt: new Date(now - 40 * 60_000).toISOString() });
    const result = await producer.conversationEnded(late);
    const email = result.tasks.find((task) => task.type === 'send_email')!;
    expect(email).toMatchObject({ expired: true, created: true });
    const [entry] = await new DeadLetterQueue(client, prefix).list({ types: ['send_email'] });
    expect(entry).toMatchObject({ jobId: email.jobId, reason: 'expired', attempts: 0, conversationId: 'late' });
    expect(await client.lpos(`${prefix}:{send_email}:wait`, email.jobId)).toBeNull();
    // a repeat finds it in the dead-letter queue and creates nothing
    const again = await producer.conversationEnded(late);
    expect(again.tasks.find((task) => task.type === 'send_email')).toMatchObject({ created: false });
    expect(await new DeadLetterQueue(client, prefix).list({ types: ['send_email'] })).toHaveLength(1);
  });

  it('rejects a malformed outcome with field errors and writes nothing', async () => {
    const isolated = uniquePrefix('producer-bad');
    const strict = createProducer({ redis: TEST_REDIS, prefix: isolated });
    try {
      const error = await strict
        .conversationEnded({
          conversationId: 'x',
          endedAt: 'yesterday',
          outcome: 'booked',
          customer: { id: 'c', email: 'nope' },
        })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(OutcomeValidationError);
      expect((error as OutcomeValidationError).issues.map((issue) => issue.path)).toEqual([
        'endedAt',
        'customer.email',
        'booking',
      ]);
      expect(await keysWithPrefix(client, isolated)).toEqual([]);
    } finally {
      await strict.close();
    }
  });

  it('rejects with RedisUnavailableError when Redis refuses connections', async () => {
    const down = createProducer({ redisUrl: 'redis://127.0.0.1:1', prefix, timeoutMs: 300 });
    try {
      await expect(down.conversationEnded(bookedOutcome('down'))).rejects.toThrow(RedisUnavailableError);
      await expect(down.conversationEnded(bookedOutcome('down'))).rejects.toThrow(
        /did not answer within 300 ms|failed/,
      );
    } finally {
      await down.close();
    }
  });

  it('rejects with RedisUnavailableError when Redis stops answering, and works again when it is back', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    const flaky = createProducer({ redisUrl: proxy.url, prefix, timeoutMs: 300 });
    try {
      await flaky.conversationEnded(resolvedOutcome('hang-0'));
      proxy.hold = true;
      const error = await flaky.conversationEnded(resolvedOutcome('hang-1')).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect((error as Error).message).toMatch(/safe: it is idempotent/);
      proxy.release();
      await expect(flaky.conversationEnded(resolvedOutcome('hang-2'))).resolves.toMatchObject({
        conversationId: 'hang-2',
      });
    } finally {
      await flaky.close();
      await proxy.close();
    }
  });
});

beforeAll(async () => {
  await removePrefix(client, prefix);
});
