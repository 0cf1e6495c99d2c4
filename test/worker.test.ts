import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { createWebhookDelivery } from '../src/delivery/providers/webhook/webhook.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { asciiKey } from '../src/tasks/job-id.js';
import { queueName, typeKeys } from '../src/redis/keys.js';
import { conversationStatus } from '../src/ops/status.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, TEST_REDIS, testConfig, uniquePrefix, WEBHOOK_SECRET } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { scriptAnswers, startReceiver, type Answer, type WebhookReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('worker');
const client = redis();
const dlq = new DeadLetterQueue(client, prefix);
let receiver: WebhookReceiver;
let worker: FleetWorker;
let clockOffset = 0;
const producer = createProducer({ redis: TEST_REDIS, prefix });
/** Per-conversation scripted answers: the n-th request of a conversation gets answers[n]. */
let scripts: Map<string, Answer[]>;

beforeAll(async () => {
  receiver = await startReceiver();
  scripts = scriptAnswers(receiver);
  worker = await startWorker({
    // These tests script failures of one destination on purpose, far above the circuit's
    // threshold: the circuit stays out of their way (test/destination-policy.test.ts covers it).
    config: testConfig(prefix, receiver.url, { CIRCUIT_MIN_CALLS: '100000' }),
    concurrency: 4,
    sweeper: false,
    clock: () => Date.now() + clockOffset,
  });
  await worker.ready;
});

afterAll(async () => {
  await worker.close();
  await producer.close();
  await receiver.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const receiptsOf = (conversationId: string, type?: string) =>
  receiver.receipts.filter(
    (receipt) => receipt.body.conversationId === conversationId && (!type || receipt.body.type === type),
  );
const statusOf = async (conversationId: string, type: string) =>
  (await conversationStatus(client, prefix, conversationId)).find((entry) => entry.type === type);
const settled = (conversationId: string, type: string) =>
  waitUntil(
    () => statusOf(conversationId, type),
    (status) => status?.state === 'completed' || status?.state === 'dead_lettered',
    `${type} of ${conversationId} to finish`,
  );

describe('worker', () => {
  it('delivers each task once, signed, with the idempotency key as webhook-id and in the body', async () => {
    const conversationId = 'deliver: Ünïcode/1';
    const result = await producer.conversationEnded(
      resolvedOutcome(conversationId, Date.now(), { surveyOptIn: false }),
    );
    for (const task of result.tasks) await settled(conversationId, task.type);
    const receipts = receiptsOf(conversationId);
    expect(receipts.map((receipt) => receipt.body.type).sort()).toEqual(['update_crm', 'update_ticket']);
    for (const receipt of receipts) {
      const task = result.tasks.find((entry) => entry.type === receipt.body.type)!;
      expect(receipt.signatureValid).toBe(true);
      expect(receipt.body.idempotencyKey).toBe(task.idempotencyKey);
      expect(receipt.webhookId).toBe(asciiKey(task.idempotencyKey));
      expect(receipt.headers['idempotency-key']).toBe(asciiKey(task.idempotencyKey));
      expect(receipt.body.expiresAt).toBe(task.expiresAt);
      expect(receipt.path).toBe(receipt.body.type === 'update_crm' ? '/crm' : '/tickets');
    }
    const crm = receipts.find((receipt) => receipt.body.type === 'update_crm')!;
    expect(crm.body.payload).toMatchObject({
      conversationId,
      outcome: 'resolved',
      customer: { email: 'grace@example.com' },
    });
    expect(await statusOf(conversationId, 'update_crm')).toMatchObject({
      state: 'completed',
      attempts: 1,
      lastError: null,
    });
  });

  it('retries a retryable failure with backoff, then completes', async () => {
    const conversationId = 'retry-then-ok';
    scripts.set(conversationId, [{ status: 503 }, { status: 500 }, { status: 200 }]);
    await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await settled(conversationId, 'update_crm');
    expect(receiptsOf(conversationId, 'update_crm').map((receipt) => receipt.body.attempt)).toEqual([1, 2, 3]);
    expect(await statusOf(conversationId, 'update_crm')).toMatchObject({
      state: 'completed',
      attempts: 3,
      lastError: 'webhook answered HTTP 500',
    });
    // How long each retry waited is read from Redis below (the scheduled retry time).
  });

  it('dead-letters a terminal failure at once, with reason terminal and one attempt', async () => {
    const conversationId = 'terminal';
    scripts.set(conversationId, [{ status: 422 }]);
    const result = await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await settled(conversationId, 'update_crm');
    expect(receiptsOf(conversationId)).toHaveLength(1);
    const entries = (await dlq.list()).filter((entry) => entry.conversationId === conversationId);
    expect(entries).toEqual([
      expect.objectContaining({
        type: 'update_crm',
        jobId: result.tasks[0]!.jobId,
        reason: 'terminal',
        attempts: 1,
        lastError: 'terminal: webhook answered HTTP 422',
      }),
    ]);
    expect(await statusOf(conversationId, 'update_crm')).toMatchObject({
      state: 'dead_lettered',
      deadLetterReason: 'terminal',
      attempts: 1,
    });
  });

  it('dead-letters after the last attempt with reason exhausted', async () => {
    const conversationId = 'exhausted';
    scripts.set(conversationId, [{ status: 503 }]);
    await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await settled(conversationId, 'update_crm');
    expect(receiptsOf(conversationId)).toHaveLength(5);
    const [entry] = (await dlq.list({ reason: 'exhausted' })).filter((e) => e.conversationId === conversationId);
    expect(entry).toMatchObject({ reason: 'exhausted', attempts: 5 });
    expect(entry!.lastError).toMatch(/HTTP 503 \(attempt 5 of 5\)/);
  });

  it('dead-letters at once when the next attempt would start after the expiry (retry horizon)', async () => {
    const conversationId = 'retry-horizon';
    scripts.set(conversationId, [{ status: 503, headers: { 'retry-after': String(5 * 3_600) } }]);
    await producer.conversationEnded(
      bookedOutcome(conversationId, Date.now(), { surveyOptIn: false, customer: { id: 'c' } }),
    );
    await settled(conversationId, 'update_crm');
    expect(receiptsOf(conversationId, 'update_crm')).toHaveLength(1);
    const [entry] = (await dlq.list({ reason: 'expired' })).filter((e) => e.conversationId === conversationId);
    expect(entry).toMatchObject({ type: 'update_crm', reason: 'expired', attempts: 1 });
    expect(entry!.lastError).toMatch(/could not end before expiresAt/);
  });

  it('dead-letters a job whose expiry passed before pickup without calling the provider', async () => {
    const conversationId = 'expired-at-pickup';
    clockOffset = 5 * 3_600_000; // the worker sees the future: every task of this outcome has expired
    try {
      await producer.conversationEnded(resolvedOutcome(conversationId));
      await settled(conversationId, 'update_crm');
      await settled(conversationId, 'update_ticket');
    } finally {
      clockOffset = 0;
    }
    expect(receiptsOf(conversationId, 'update_crm')).toHaveLength(0);
    const entries = (await dlq.list({ reason: 'expired' })).filter((e) => e.conversationId === conversationId);
    expect(entries.map((entry) => [entry.type, entry.attempts])).toEqual([['update_crm', 0]]);
    expect(entries[0]!.lastError).toMatch(/^expired: expired at pickup/);
    // update_ticket (24 h) had not expired yet and was delivered
    expect(receiptsOf(conversationId, 'update_ticket')).toHaveLength(1);
  });

  it('dead-letters malformed job data as invalid and keeps running', async () => {
    const queue = new Queue(queueName('update_crm'), { connection: client, prefix });
    await queue.add(
      'update_crm',
      { type: 'update_crm', conversationId: 'garbage', idempotencyKey: 'garbage:update_crm', createdAt: 'yesterday' },
      { jobId: 'garbage%3Aupdate_crm' },
    );
    await queue.add('update_crm', 'not even an object' as unknown as object, { jobId: 'garbage2%3Aupdate_crm' });
    await waitUntil(
      () => dlq.list({ reason: 'invalid' }),
      (entries) => entries.length === 2,
      'two invalid entries',
    );
    const entries = await dlq.list({ reason: 'invalid' });
    expect(entries.map((entry) => entry.jobId).sort()).toEqual(['garbage%3Aupdate_crm', 'garbage2%3Aupdate_crm']);
    expect(entries.find((entry) => entry.jobId === 'garbage%3Aupdate_crm')!.lastError).toMatch(/createdAt/);
    await queue.close();
    // still serving
    await producer.conversationEnded(resolvedOutcome('after-garbage', Date.now(), { ticket: undefined }));
    await settled('after-garbage', 'update_crm');
    expect(await statusOf('after-garbage', 'update_crm')).toMatchObject({ state: 'completed' });
  });
});

/**
 * When the next attempt is scheduled, read from Redis rather than timed: a worker on a
 * frozen, injected clock (its webhook adapter reads Retry-After on the same clock) fails
 * each task's first attempt, and the test reads where the retry was put: aftercall's
 * retrying index (the next attempt's time on the worker's clock), BullMQ's delay on the
 * job, and BullMQ's delayed set. The policy is the default's first step, 30 s here, so
 * no retry happens while the test looks. (Retry-After comes with 503 here: how a 429
 * waits is the destination policy's business.)
 */
describe('worker: the scheduled retry time, against an injected clock', () => {
  const retryPrefix = uniquePrefix('worker-retry');
  const retryProducer = createProducer({ redis: TEST_REDIS, prefix: retryPrefix });
  const keys = typeKeys(retryPrefix, 'update_crm');
  const frozen = Math.floor(Date.now() / 1_000) * 1_000;
  const clock = () => frozen;
  let retryWorker: FleetWorker;

  beforeAll(async () => {
    retryWorker = await startWorker({
      config: testConfig(retryPrefix, receiver.url, {
        RETRY_BASE_DELAY: '30s',
        RETRY_MAX_DELAY: '60s',
        RETRY_JITTER: '1s',
      }),
      concurrency: 4,
      sweeper: false,
      clock,
      queues: ['update_crm'],
      ports: {
        update_crm: createWebhookDelivery({
          urls: { update_crm: `${receiver.url}/crm` },
          secret: WEBHOOK_SECRET,
          now: clock,
        }),
      },
    });
    await retryWorker.ready;
  });

  afterAll(async () => {
    await retryWorker.close();
    await retryProducer.close();
    await removePrefix(client, retryPrefix);
  });

  /** Fails the first attempt with `answer`; returns where the retry was scheduled. */
  async function scheduledRetry(conversationId: string, answer: Answer) {
    scripts.set(conversationId, [answer, { status: 200 }]);
    const enqueuedAt = Date.now();
    const result = await retryProducer.conversationEnded(
      resolvedOutcome(conversationId, Date.now(), { ticket: undefined }),
    );
    const jobId = result.tasks.find((task) => task.type === 'update_crm')!.jobId;
    // the job is in BullMQ's delayed set once the failed attempt has been handed back
    const delayedScore = await waitUntil(
      () => client.zscore(keys.delayed, jobId),
      (score) => score !== null,
      `${conversationId}'s retry to be scheduled`,
    );
    const readAt = Date.now();
    const [retryAt, delay, attemptsMade] = await Promise.all([
      client.zscore(keys.retrying, jobId),
      client.hget(keys.job(jobId), 'delay'),
      client.hget(keys.job(jobId), 'atm'),
    ]);
    // BullMQ's delayed score: the due time (on the real clock) times 4096, plus a counter
    const dueAt = Math.floor(Number(delayedScore) / 4_096);
    expect(receiptsOf(conversationId, 'update_crm')).toHaveLength(1);
    expect(attemptsMade).toBe('1');
    // the handler's delay is the one BullMQ scheduled
    expect(Number(delay)).toBe(Number(retryAt) - frozen);
    expect(dueAt - Number(delay)).toBeGreaterThanOrEqual(enqueuedAt);
    expect(dueAt - Number(delay)).toBeLessThanOrEqual(readAt);
    return Number(retryAt) - frozen;
  }

  it('schedules a retryable failure by the backoff: 30 s and under 1 s of jitter', async () => {
    const delay = await scheduledRetry('sched-503', { status: 503 });
    expect(delay).toBeGreaterThanOrEqual(30_000);
    expect(delay).toBeLessThan(31_000);
  });

  it('schedules by a Retry-After that asks for longer: exactly 90 s', async () => {
    expect(await scheduledRetry('sched-503-90', { status: 503, headers: { 'retry-after': '90' } })).toBe(90_000);
  });

  it("reads a Retry-After HTTP date on the worker's clock: exactly 2 minutes", async () => {
    const date = new Date(frozen + 120_000).toUTCString();
    expect(await scheduledRetry('sched-503-date', { status: 503, headers: { 'retry-after': date } })).toBe(120_000);
  });

  it.each([
    ['a shorter Retry-After', '1'],
    ['a Retry-After date in the past', new Date(frozen - 3_600_000).toUTCString()],
    ['an unreadable Retry-After', 'soon'],
  ])('keeps the backoff over %s', async (_label, retryAfter) => {
    const delay = await scheduledRetry(`sched-${_label.replace(/\W+/g, '-')}`, {
      status: 503,
      headers: { 'retry-after': retryAfter },
    });
    expect(delay).toBeGreaterThanOrEqual(30_000);
    expect(delay).toBeLessThan(31_000);
  });
});
