/**
 * The expiry sweeper: stale work is dead-lettered even when no worker picks it up.
 *
 * Workers check expiry when they pick a job up; the sweep catches what nobody picks up in
 * time (a backlog, a stopped queue, a reminder whose window closed). It runs as a BullMQ
 * job scheduler on a maintenance queue (default every 15 s) whose global concurrency is
 * 1, so one sweep runs at a time across the whole fleet; every worker process serves the
 * maintenance queue (unless SWEEPER_ENABLED=false), so the sweep survives any one of them.
 *
 * A sweep reads each type's expiry index (jobId by expiresAt) up to now, in batches, and
 * dead-letters each waiting or delayed job found there with reason `expired`, in one
 * script per batch (expire-jobs-12.lua). Active jobs are never touched. Its cost grows with
 * the number of jobs that expired, not with the backlog. Each sweep also removes
 * completed jobs older than the dedupe window (BullMQ only trims them when another job
 * of the queue completes).
 */
import { DEFAULT_SWEEP_BATCH_SIZE } from '../config/defaults.js';
import { Queue, Worker } from 'bullmq';
import type { Logger } from './logger.js';
import { MAINTENANCE_QUEUE, queueName, typeKeys } from '../redis/keys.js';
import { expireJobs, type RedisClient } from '../redis/scripts.js';
import { taskTypes, type TaskType } from '../tasks/catalog.js';
import { ConversationSettler } from '../redis/conversation-settlement.js';

const isTaskType = (value: string): value is TaskType => (taskTypes as readonly string[]).includes(value);
import { systemClock, type Clock } from '../contract/time.js';

export const SWEEP_SCHEDULER_ID = 'expiry-sweep';
const SWEEP_MESSAGE = 'expired: expiresAt passed before a worker picked it up (found by the expiry sweeper)';

export interface SweepOptions {
  prefix: string;
  now?: number;
  /** Index entries handled per Redis call; each call stays short. */
  batchSize?: number;
  /** When an expired entry is still active, look at it again this much later. */
  recheckAfterMs?: number;
  types?: readonly TaskType[];
}

export interface SweepResult {
  /** Jobs dead-lettered with reason `expired`, by type. */
  expired: Record<TaskType, number>;
  /** Index entries of jobs that had finished or were gone. */
  dropped: number;
  /** Redis calls made. */
  calls: number;
  durationMs: number;
}

/**
 * Expired jobs handled per Redis call. A call blocks Redis while it runs, and its cost is
 * its batch times the search for each job (up to 1,000 wait-list entries from each end,
 * see lua/includes/takePending.lua): 50 keeps the worst case, expired jobs scattered through a long
 * backlog, at a few milliseconds per call (`npm run bench`, sweeper scaling).
 */

/** One sweep over every type's expiry index. Safe to run concurrently with anything. */
export async function sweepExpiredJobs(client: RedisClient, options: SweepOptions): Promise<SweepResult> {
  const started = performance.now();
  const now = options.now ?? Date.now();
  const batchSize = options.batchSize ?? DEFAULT_SWEEP_BATCH_SIZE;
  const recheckAt = now + (options.recheckAfterMs ?? 5_000);
  const result: SweepResult = { expired: {} as Record<TaskType, number>, dropped: 0, calls: 0, durationMs: 0 };
  const types = options.types ?? taskTypes;
  const settler = new ConversationSettler(client, options.prefix);
  await Promise.all(
    types.map(async (type) => {
      const keys = typeKeys(options.prefix, type);
      let expired = 0;
      // Every entry a batch reads is dropped, dead-lettered or moved past `now`, so the
      // loop ends; the cap only guards against a bug turning it into a busy loop.
      for (let batch = 0; batch < 100_000; batch += 1) {
        const [batchExpired, dropped, , remaining, finished] = await expireJobs(client, keys, {
          now,
          message: SWEEP_MESSAGE,
          limit: batchSize,
          recheckAt,
        });
        result.calls += 1;
        expired += batchExpired;
        // Their conversations' follow-up countdowns (conversation metrics): counted down as dead-lettered.
        const pairs = finished ?? [];
        for (let at = 0; at + 2 < pairs.length; at += 3) {
          const anchor = pairs[at]!;
          if (isTaskType(anchor)) settler.finished(anchor, pairs[at + 1]!, false, pairs[at + 2] === '1');
        }
        result.dropped += dropped;
        if (remaining === 0) break;
      }
      result.expired[type] = expired;
    }),
  );
  await settler.flush();
  result.durationMs = performance.now() - started;
  return result;
}

export interface ExpirySweeperOptions {
  client: RedisClient;
  prefix: string;
  intervalMs: number;
  batchSize: number;
  dedupeWindowMs: number;
  logger: Logger;
  clock?: Clock;
  workerName?: string;
  onSweep?: (result: SweepResult) => void;
}

export interface ExpirySweeper {
  close(): Promise<void>;
}

/** Serves the maintenance queue and keeps the sweep scheduled. */
export async function startExpirySweeper(options: ExpirySweeperOptions): Promise<ExpirySweeper> {
  const { client, prefix, logger } = options;
  const clock = options.clock ?? systemClock;
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: client, prefix });
  maintenance.on('error', (error) => logger.error({ err: error.message }, 'maintenance queue error'));
  await maintenance.setGlobalConcurrency(1);
  await maintenance.upsertJobScheduler(
    SWEEP_SCHEDULER_ID,
    { every: options.intervalMs },
    { name: SWEEP_SCHEDULER_ID, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const queues = taskTypes.map((type) => new Queue(queueName(type), { connection: client, prefix }));
  for (const queue of queues) queue.on('error', () => undefined);

  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async () => {
      const result = await sweepExpiredJobs(client, { prefix, now: clock(), batchSize: options.batchSize });
      await Promise.all(queues.map((queue) => queue.clean(options.dedupeWindowMs, 1000, 'completed')));
      const expired = Object.values(result.expired).reduce((sum, count) => sum + count, 0);
      logger.info(
        { expired, byType: result.expired, dropped: result.dropped, durationMs: Math.round(result.durationMs) },
        'expiry sweep',
      );
      options.onSweep?.(result);
      return { expired };
    },
    { connection: client, prefix, concurrency: 1, ...(options.workerName && { name: options.workerName }) },
  );
  worker.on('error', (error) => logger.error({ err: error.message }, 'expiry sweeper error'));
  return {
    async close() {
      await worker.close();
      await Promise.all([maintenance, ...queues].map((queue) => queue.close()));
    },
  };
}
