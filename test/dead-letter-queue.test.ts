import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepExpiredJobs } from '../src/worker/expiry-sweeper.js';
import { createProducer } from '../src/producer/producer.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { conversationStatus } from '../src/ops/status.js';
import { startWorker } from '../src/worker/worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, TEST_REDIS, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('dlq');
const client = redis();
const producer = createProducer({ redis: TEST_REDIS, prefix });
const dlq = new DeadLetterQueue(client, prefix);
const HOUR = 3_600_000;
let receiver: WebhookReceiver;
const now = Date.now();

beforeAll(async () => {
  receiver = await startReceiver();
  // Expired entries across three types: the CRM, e-mail and ticket tasks of two outcomes.
  await producer.conversationEnded(bookedOutcome('d-1', now, { ticket: { id: 'T-1' }, surveyOptIn: false }));
  await producer.conversationEnded(resolvedOutcome('d-2', now));
  await sweepExpiredJobs(client, { prefix, now: now + 80 * HOUR });
});

afterAll(async () => {
  await producer.close();
  await receiver.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('dead-letter queue', () => {
  it('lists entries across task types with every field, filtered by type and reason', async () => {
    const all = await dlq.list();
    expect(all.map((entry) => `${entry.type}:${entry.conversationId}`).sort()).toEqual([
      'schedule_reminder:d-1',
      'send_email:d-1',
      'update_crm:d-1',
      'update_crm:d-2',
      'update_ticket:d-1',
      'update_ticket:d-2',
    ]);
    const [crm] = await dlq.list({ types: ['update_crm'], reason: 'expired', limit: 1 });
    expect(Object.keys(crm!).sort()).toEqual(
      [
        'attempts',
        'conversationId',
        'createdAt',
        'deadLetteredAt',
        'expiresAt',
        'history',
        'idempotencyKey',
        'jobId',
        'lastError',
        'payload',
        'reason',
        'type',
      ].sort(),
    );
    expect(crm).toMatchObject({
      type: 'update_crm',
      reason: 'expired',
      attempts: 0,
      lastError: expect.stringMatching(/^expired: /),
      // Expired before any worker took it: no attempt reached its destination.
      history: [],
    });
    expect(await dlq.list({ reason: 'terminal' })).toEqual([]);
    expect((await dlq.counts()).update_ticket).toEqual({ expired: 2, exhausted: 0, terminal: 0, invalid: 0 });
  });

  it('refuses to replay an expired entry without a new expiry, and replays it with one', async () => {
    const [entry] = await dlq.list({ types: ['update_crm'] });
    await expect(dlq.replay('update_crm', entry!.jobId, { now: now + 80 * HOUR })).rejects.toThrow(
      /give it a new expiry/,
    );
    const worker = await startWorker({
      config: testConfig(prefix, receiver.url),
      queues: ['update_crm'],
      sweeper: false,
    });
    try {
      expect(await dlq.replay('update_crm', entry!.jobId, { expiresAt: Date.now() + HOUR })).toBe(true);
      expect(await dlq.replay('update_crm', entry!.jobId, { expiresAt: Date.now() + HOUR })).toBe(false);
      await waitUntil(
        () => conversationStatus(client, prefix, entry!.conversationId!),
        (entries) => entries.find((e) => e.type === 'update_crm')?.state === 'completed',
        'the replayed job to complete',
      );
    } finally {
      await worker.close();
    }
    expect(receiver.receipts.map((receipt) => receipt.body.idempotencyKey)).toEqual([entry!.idempotencyKey]);
    expect((await dlq.counts()).update_crm.expired).toBe(1);
  });

  it('purges an entry for good, after which the key can be enqueued again', async () => {
    const [entry] = await dlq.list({ types: ['send_email'] });
    expect(await dlq.purge('send_email', entry!.jobId)).toBe(true);
    expect(await dlq.purge('send_email', entry!.jobId)).toBe(false);
    expect(await dlq.list({ types: ['send_email'] })).toEqual([]);
    expect((await dlq.counts()).send_email.expired).toBe(0);
    const again = await producer.conversationEnded(
      bookedOutcome('d-1', Date.now(), { ticket: { id: 'T-1' }, surveyOptIn: false }),
    );
    expect(again.tasks.find((task) => task.type === 'send_email')).toMatchObject({ created: true });
  });
});
