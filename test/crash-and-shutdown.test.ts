/**
 * Real worker processes: one killed with SIGKILL in the middle of a job (recovered by
 * another; or, past MAX_STALLED_COUNT, dead-lettered), one stopped with SIGTERM while a
 * job is running.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { conversationStatus } from '../src/ops/status.js';
import { startChildWorker, type ChildWorker } from './helpers/child-worker.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { redis, REDIS_URL, removePrefix, testEnv, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('crash');
const client = redis();
const producer = createProducer({ redisUrl: REDIS_URL, prefix });
let receiver: WebhookReceiver;
const children: ChildWorker[] = [];
const spawnWorker = (extra: Record<string, string> = {}) => {
  const child = startChildWorker(testEnv(prefix, receiver.url, { SWEEPER_ENABLED: 'false', ...extra }), [
    '--queues',
    'update_crm',
  ]);
  children.push(child);
  return child;
};

beforeAll(async () => {
  receiver = await startReceiver();
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(children.map((child) => child.exited));
  await producer.close();
  await receiver.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('worker processes', () => {
  /**
   * Enqueues a conversation's update_crm task and SIGKILLs the worker delivering it: the
   * receiver holds the first delivery unanswered until then (later ones get 200).
   */
  async function killMidDelivery(conversationId: string, workerEnv: Record<string, string> = {}) {
    let firstSeen: () => void;
    const firstArrived = new Promise<void>((resolve) => (firstSeen = resolve));
    receiver.answer = (receipt) => {
      if (receipt.body.conversationId !== conversationId) return {};
      const count = receiver.receipts.filter((r) => r.body.conversationId === conversationId).length;
      if (count === 1) {
        firstSeen();
        return { delayMs: 60_000 };
      }
      return { status: 200 };
    };
    const victim = spawnWorker(workerEnv);
    await victim.waitForLog((line) => line.msg === 'worker started');
    const result = await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await firstArrived;
    victim.kill('SIGKILL');
    return { jobId: result.tasks[0]!.jobId, victimExit: await victim.exited };
  }

  it('dead-letters a job that crashed its worker more often than MAX_STALLED_COUNT allows, as exhausted, without delivering it again', async () => {
    const conversationId = 'crashes-its-workers';
    // No stall allowed: the first crash is one too many.
    const { jobId } = await killMidDelivery(conversationId, { MAX_STALLED_COUNT: '0' });

    const rescuer = spawnWorker({ MAX_STALLED_COUNT: '0' });
    const line = await rescuer.waitForLog((entry) => entry.msg === 'job failed' && entry.jobId === jobId, 30_000);
    expect(line).toMatchObject({ type: 'update_crm', result: 'dead_lettered', reason: 'exhausted' });
    const [status] = await waitUntil(
      () => conversationStatus(client, prefix, conversationId),
      (entries) => entries[0]?.state === 'dead_lettered',
      'the job in the dead-letter queue',
    );
    expect(status!.deadLetterReason).toBe('exhausted');
    expect(receiver.receipts.filter((receipt) => receipt.body.conversationId === conversationId)).toHaveLength(1);
    // Its stall limit of 0 must not reach the other tests' jobs.
    rescuer.kill('SIGTERM');
    expect(await rescuer.exited).toEqual({ code: 0, signal: null });
  });

  it('recovers the job of a worker killed with SIGKILL mid-delivery: it completes once, in another process', async () => {
    const conversationId = 'killed-mid-job';
    // The first delivery hangs until its worker is dead; the receiver never answers it.
    const { jobId, victimExit } = await killMidDelivery(conversationId);
    expect(victimExit.signal).toBe('SIGKILL');

    const rescuer = spawnWorker();
    await rescuer.waitForLog((line) => line.msg === 'job completed' && line.conversationId === conversationId, 30_000);
    const status = await waitUntil(
      () => conversationStatus(client, prefix, conversationId),
      (entries) => entries[0]?.state === 'completed',
      'the job to complete',
    );
    expect(status).toHaveLength(1);
    const job = await client.hgetall(`${prefix}:{update_crm}:${jobId}`);
    expect(job.pb).toBe(`${hostname()}:${rescuer.pid}`);
    // The receiver saw the request twice (the first never got its answer) but one key: the
    // effect, deduplicated by the idempotency key, is once.
    const receipts = receiver.receipts.filter((r) => r.body.conversationId === conversationId);
    expect(receipts.length).toBe(2);
    expect(new Set(receipts.map((r) => r.webhookId)).size).toBe(1);
    expect(
      rescuer.logs.filter((line) => line.msg === 'job completed' && line.conversationId === conversationId),
    ).toHaveLength(1);
    rescuer.kill('SIGTERM');
    expect(await rescuer.exited).toEqual({ code: 0, signal: null });
  });

  it('on SIGTERM stops taking jobs, lets the active one finish, and exits 0', async () => {
    const conversationId = 'graceful';
    receiver.answer = (receipt) => (receipt.body.conversationId === conversationId ? { delayMs: 1_500 } : {});
    const worker = spawnWorker({ SHUTDOWN_GRACE: '10s' });
    await worker.waitForLog((line) => line.msg === 'worker started');
    await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await waitUntil(
      () => receiver.receipts.filter((r) => r.body.conversationId === conversationId).length,
      (n) => n === 1,
      'the delivery to start',
    );
    worker.kill('SIGTERM');
    // a job enqueued after the signal is left for other workers
    await worker.waitForLog((line) => line.msg === 'shutdown requested');
    await producer.conversationEnded(resolvedOutcome(`${conversationId}-after`, Date.now(), { ticket: undefined }));
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(worker.logs.some((line) => line.msg === 'job completed' && line.conversationId === conversationId)).toBe(
      true,
    );
    expect(worker.logs.some((line) => line.conversationId === `${conversationId}-after`)).toBe(false);
    const [status] = await conversationStatus(client, prefix, conversationId);
    expect(status).toMatchObject({ state: 'completed', attempts: 1 });
    const [after] = await conversationStatus(client, prefix, `${conversationId}-after`);
    expect(after).toMatchObject({ state: 'waiting' });
  });

  it('when the SIGTERM grace runs out, cancels the request in flight and puts its job back without using an attempt', async () => {
    const conversationId = 'grace-runs-out';
    // The first delivery hangs far past the grace; later ones are answered.
    receiver.answer = (receipt) => {
      if (receipt.body.conversationId !== conversationId) return {};
      const count = receiver.receipts.filter((r) => r.body.conversationId === conversationId).length;
      return count === 1 ? { delayMs: 60_000 } : { status: 200 };
    };
    const worker = spawnWorker({ SHUTDOWN_GRACE: '500ms', WEBHOOK_TIMEOUT: '30s' });
    await worker.waitForLog((line) => line.msg === 'worker started');
    await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await waitUntil(
      () => receiver.receipts.filter((r) => r.body.conversationId === conversationId).length,
      (n) => n === 1,
      'the delivery to start',
    );
    worker.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    // The job went back by the cancellation, not by a forced close and a lapsed lock.
    const back = worker.logs.find((line) => line.conversationId === conversationId && line.result === 'postponed');
    expect(back).toMatchObject({ attempt: 1 });
    expect(worker.logs.some((line) => /forced close/.test(String(line.msg)))).toBe(false);
    const [waiting] = await conversationStatus(client, prefix, conversationId);
    expect(waiting).toMatchObject({ attempts: 0 });
    expect(['waiting', 'scheduled']).toContain(waiting!.state);
    // Another worker takes it at once and delivers it, as its first attempt.
    const next = spawnWorker();
    await next.waitForLog((line) => line.msg === 'job completed' && line.conversationId === conversationId, 30_000);
    // The log line comes just before BullMQ marks the job completed.
    const [done] = await waitUntil(
      () => conversationStatus(client, prefix, conversationId),
      (entries) => entries[0]?.state === 'completed',
      'the job to be marked completed',
    );
    expect(done).toMatchObject({ state: 'completed', attempts: 1 });
    next.kill('SIGTERM');
    expect(await next.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses to start when a served type has no destination, naming the variable', async () => {
    const worker = startChildWorker({ ...testEnv(prefix, receiver.url), CRM_WEBHOOK_URL: '' }, [
      '--queues',
      'update_crm',
    ]);
    children.push(worker);
    expect((await worker.exited).code).toBe(1);
    expect(worker.stderr).toMatch(/CRM_WEBHOOK_URL: required/);
  });
});
