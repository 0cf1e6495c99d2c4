/**
 * The lock-checked dead-letter move. A worker dead-letters a job by moving it out of the
 * active list into the dead-letter store in one script that first checks the job's lock
 * is still this worker's (dead-letter-active-10.lua). A worker whose lock lapsed (its job
 * stalled and another worker took it) gets -2 and changes nothing; the worker holding
 * the lock decides. So when two handlers race on one job, the job is dead-lettered once
 * and counted once.
 *
 * The jobs are real (enqueued by the producer), taken with BullMQ's own getNextJob and
 * moved back by BullMQ's own stalled-job check; the handlers are the worker's, called
 * with the lock tokens a worker would pass.
 */
import { DelayedError, type Job, Worker } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import type { DeliveryPort } from '../src/contract/delivery-port.js';
import { TerminalDeliveryError } from '../src/delivery/errors.js';
import { createProducer } from '../src/producer/producer.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { queueName, typeKeys } from '../src/redis/keys.js';
import { resolveTaskConfigs, taskDefinition } from '../src/tasks/catalog.js';
import { createJobHandler, type JobOutcomeEvent } from '../src/worker/job-handler.js';
import { createLogger } from '../src/worker/logger.js';
import { DEFAULT_RETRY_POLICY } from '../src/worker/retry-policy.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const prefix = uniquePrefix('dead-letter-lock');
const client = redis();
const producer = createProducer({ redisUrl: REDIS_URL, prefix });
const keys = typeKeys(prefix, 'update_crm');
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await producer.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

/** A port that refuses every delivery as terminal once `open` is called. */
function refusingPort() {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const port: DeliveryPort = {
    provider: 'webhook',
    async deliver() {
      await gate;
      throw new TerminalDeliveryError('webhook answered HTTP 422', { provider: 'webhook', status: 422 });
    },
  };
  return { port, open };
}

function handlerFor(port: DeliveryPort, outcomes: JobOutcomeEvent[]) {
  return createJobHandler({
    definition: taskDefinition('update_crm'),
    config: resolveTaskConfigs().get('update_crm')!,
    port,
    keys,
    client,
    retryPolicy: DEFAULT_RETRY_POLICY,
    deliveryTimeoutMs: 1_000,
    clock: Date.now,
    logger: createLogger({ level: 'silent' }),
    onOutcome: (event) => outcomes.push(event),
  });
}

/** Everything a dead-letter move would change, for one job. */
async function snapshot(jobId: string) {
  const [job, lock, active, wait, failed, counts, expiry, retrying] = await Promise.all([
    client.hgetall(keys.job(jobId)),
    client.get(keys.lock(jobId)),
    client.lrange(keys.active, 0, -1),
    client.lrange(keys.wait, 0, -1),
    client.zrange(keys.failed, 0, '-1', 'WITHSCORES'),
    client.hgetall(keys.deadLetterCounts),
    client.zscore(keys.expiry, jobId),
    client.zscore(keys.retrying, jobId),
  ]);
  return { job, lock, active, wait, failed, counts, expiry, retrying };
}

async function enqueue(conversationId: string): Promise<string> {
  const result = await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
  return result.tasks.find((task) => task.type === 'update_crm')!.jobId;
}

function bullWorker(options: { lockDuration?: number; stalledInterval?: number } = {}) {
  const connection = redis();
  const worker = new Worker(queueName('update_crm'), null, { connection, prefix, autorun: false, ...options });
  worker.on('error', () => undefined);
  closers.push(async () => {
    await worker.close();
    connection.disconnect();
  });
  return worker;
}

describe('the lock-checked dead-letter move', () => {
  it("with someone else's lock token: -2, and nothing changes", async () => {
    const jobId = await enqueue('lock-intruder');
    const owner = bullWorker();
    const job = (await owner.getNextJob('owner-token')) as Job;
    expect(job.id).toBe(jobId);
    const before = await snapshot(jobId);
    expect(before.lock).toBe('owner-token');
    expect(before.active).toContain(jobId);

    const outcomes: JobOutcomeEvent[] = [];
    const intruder = refusingPort();
    intruder.open();
    const error = await handlerFor(intruder.port, outcomes)(job, 'someone-elses-token').catch(
      (caught: unknown) => caught,
    );
    expect(error).not.toBeInstanceOf(DelayedError);
    expect((error as Error).message).toMatch(/could not dead-letter job .* \(terminal\): lock lost \(code -2\)/);
    expect(await snapshot(jobId)).toEqual(before);
    expect(outcomes.filter((event) => event.result === 'dead_lettered')).toEqual([]);

    // the owner's own move goes through
    const owned = refusingPort();
    owned.open();
    const moved = await handlerFor(owned.port, outcomes)(job, 'owner-token').catch((caught: unknown) => caught);
    expect(moved).toBeInstanceOf(DelayedError);
    const after = await snapshot(jobId);
    expect(after.lock).toBeNull();
    expect(after.active).not.toContain(jobId);
    expect(after.failed).toEqual([jobId, expect.any(String)]);
    expect(after.counts).toEqual({ terminal: '1' });
    expect(after.job.deadLetterReason).toBe('terminal');
  });

  // The stale handler is the one whose lock lapsed: its job stalled, BullMQ's stalled-job
  // check put it back, and another worker took it. Both handlers then fail the delivery
  // terminally and dead-letter; each order of reaching Redis is run.
  it.each([
    ['the stale handler reaches Redis first', ['stale', 'current']],
    ['the current handler reaches Redis first', ['current', 'stale']],
  ] as const)('two handlers racing on one job: one entry, counted once (%s)', async (_label, order) => {
    const typeCountsBefore = Number((await client.hget(keys.deadLetterCounts, 'terminal')) ?? 0);
    const jobId = await enqueue(`lock-race-${order[0]}`);
    // Worker A takes the job; nothing renews its lock, which lapses after 300 ms.
    const stale = bullWorker({ lockDuration: 300 });
    const staleJob = (await stale.getNextJob('token-a')) as Job;
    expect(staleJob.id).toBe(jobId);
    await waitUntil(
      () => client.exists(keys.lock(jobId)),
      (exists) => exists === 0,
      "worker A's lock to lapse",
    );
    // BullMQ's stalled-job check (run by worker B) moves it back to wait; B takes it.
    const current = bullWorker({ stalledInterval: 100 });
    await current.startStalledCheckTimer();
    await waitUntil(
      () => client.lrange(keys.wait, 0, -1),
      (wait) => wait.includes(jobId),
      'the stalled job back in wait',
    );
    const currentJob = (await current.getNextJob('token-b')) as Job;
    expect(currentJob.id).toBe(jobId);
    expect(await client.get(keys.lock(jobId))).toBe('token-b');

    const outcomes: JobOutcomeEvent[] = [];
    const ports = { stale: refusingPort(), current: refusingPort() };
    const runs = {
      stale: handlerFor(ports.stale.port, outcomes)(staleJob, 'token-a').catch((caught: unknown) => caught),
      current: handlerFor(ports.current.port, outcomes)(currentJob, 'token-b').catch((caught: unknown) => caught),
    };
    ports[order[0]].open();
    const first = await runs[order[0]];
    ports[order[1]].open();
    const second = await runs[order[1]];
    const results = { [order[0]]: first, [order[1]]: second } as Record<'stale' | 'current', unknown>;

    expect(results.current).toBeInstanceOf(DelayedError);
    expect((results.stale as Error).message).toMatch(/lock lost \(code -2\)/);
    expect(outcomes.filter((event) => event.result === 'dead_lettered').map((event) => event.jobId)).toEqual([jobId]);
    const entries = (await new DeadLetterQueue(client, prefix).list({ types: ['update_crm'] })).filter(
      (entry) => entry.jobId === jobId,
    );
    expect(entries).toEqual([expect.objectContaining({ reason: 'terminal', attempts: 1 })]);
    expect(Number(await client.hget(keys.deadLetterCounts, 'terminal'))).toBe(typeCountsBefore + 1);
    expect(await client.lrange(keys.active, 0, -1)).not.toContain(jobId);
  });
});
