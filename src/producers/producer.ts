/**
 * The producer: what a voice-agent server embeds. `conversationEnded(outcome)` turns a
 * conversation outcome into jobs and returns in milliseconds.
 *
 * 1. Validate the outcome. Bad input throws OutcomeValidationError listing every field;
 *    nothing reaches Redis.
 * 2. Plan it with the task catalog (plan.ts): which tasks, which keys, when each runs and
 *    expires.
 * 3. Enqueue the whole plan in one round trip: one MULTI per task type (each in its own
 *    hash slot, so this works on Redis Cluster too), all sent at once. Each MULTI writes
 *    the job with BullMQ's own add script together with its expiry-index entry; a task
 *    that is already expired goes on into the dead-letter queue in the same MULTI; a
 *    reminder claims its booking in the same MULTI (replacing or removing the previous
 *    one).
 * 4. Resolve with the job ids. The job id is derived from the idempotency key, so a
 *    repeated outcome (concurrent, or long after the first jobs completed) names the
 *    existing jobs and creates nothing: `created` is false for them.
 *
 * Deduplication lasts as long as the job exists: a completed job is kept for the dedupe
 * window (default 24 h) and then removed; a dead-lettered job is kept until it is
 * replayed or purged. With Redis unreachable the call rejects within the deadline
 * (default 2 s) with RedisUnavailableError instead of hanging the voice agent.
 */
import { Job, Queue, type IRedisTransaction, type JobsOptions } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import { parseConversationOutcome } from './conversation-outcome.js';
import { planOutcome, type Plan, type PlannedTask, type ScopeOnlyChange, type SkipReason } from './plan.js';
import { createRedisConnection, describeRedisUrl, whenReady } from '../queues/connection.js';
import { encodeKeyPart } from '../queues/job-id.js';
import { DEFAULT_PREFIX, queueName, typeKeys } from '../queues/keys.js';
import { BACKOFF_STRATEGY } from '../queues/backoff.js';
import { defineScripts, queueScript, type RedisClient } from '../queues/scripts.js';
import { resolveTaskConfigs, taskTypes, type TaskConfigs, type TaskOverrides, type TaskType } from '../tasks/catalog.js';
import { HOUR, systemClock, toIso, type Clock } from '../time.js';

export interface ProducerOptions {
  /** Redis URL (redis:// or rediss://); default redis://127.0.0.1:6379. Ignored when `connection` is given. */
  redisUrl?: string;
  /** A connection of the caller's; the producer does not close it. */
  connection?: RedisClient;
  /** Key prefix shared with the workers; default `aftercall`. */
  prefix?: string;
  /** Per-type changes to the catalog's defaults (switch off, attempts, timings). */
  tasks?: TaskOverrides;
  /** How long a completed task still deduplicates a repeated outcome; default 24 h. */
  dedupeWindowMs?: number;
  /** Deadline of one `conversationEnded` call when Redis is slow or away; default 2 s. */
  timeoutMs?: number;
  clock?: Clock;
}

export interface EnqueuedTask {
  type: TaskType;
  jobId: string;
  idempotencyKey: string;
  runAt: string;
  expiresAt: string;
  /** False when a job with this key already existed (a repeated outcome): nothing new was created. */
  created: boolean;
  /** True when the task was already expired when planned: it went to the dead-letter queue. */
  expired: boolean;
}

export interface EnqueueResult {
  conversationId: string;
  tasks: EnqueuedTask[];
  skipped: { type: TaskType; reason: SkipReason }[];
}

export interface Producer {
  conversationEnded(outcome: unknown): Promise<EnqueueResult>;
  readonly taskConfigs: TaskConfigs;
  /** Closes the producer's own connection (not one passed in). */
  close(): Promise<void>;
}

/** Redis did not answer in time. Enqueueing again later is safe: it is idempotent. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

export class EnqueueError extends Error {
  override readonly name = 'EnqueueError';
}

export const DEFAULT_DEDUPE_WINDOW_MS = 24 * HOUR;
export const DEFAULT_PRODUCER_TIMEOUT_MS = 2_000;
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function createProducer(options: ProducerOptions = {}): Producer {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? DEFAULT_PRODUCER_TIMEOUT_MS;
  const dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  const taskConfigs = resolveTaskConfigs(options.tasks);
  const redisUrl = options.redisUrl ?? DEFAULT_REDIS_URL;
  const ownsConnection = !options.connection;
  const where = ownsConnection ? `Redis at ${describeRedisUrl(redisUrl)}` : 'Redis (the connection given to createProducer)';
  const client: RedisClient =
    options.connection ?? createRedisConnection('producer', { url: redisUrl, timeoutMs, name: 'aftercall-producer' });
  defineScripts(client);

  // One BullMQ Queue per type, made at start-up: each checks the Redis version once when
  // it connects, which must not cost a round trip in the voice agent's call.
  const makeQueue = (type: TaskType) => {
    const queue = new Queue(queueName(type), { connection: client, prefix });
    queue.on('error', () => undefined); // surfaced by the calls themselves
    return queue;
  };
  const queues = new Map<TaskType, Queue>(taskTypes.map((type) => [type, makeQueue(type)]));
  const clientOf = async (type: TaskType) => {
    const queue = queues.get(type)!;
    try {
      return { queue, bullClient: await queue.getBackend().client };
    } catch (error) {
      // Its start-up check failed (Redis went away mid-way): the next call uses a new one.
      queues.set(type, makeQueue(type));
      void queue.close().catch(() => undefined);
      throw error;
    }
  };
  const jobOptions = (task: PlannedTask, now: number): JobsOptions => ({
    jobId: task.jobId,
    timestamp: now,
    delay: Math.max(0, task.runAt - now),
    attempts: task.attempts,
    backoff: { type: BACKOFF_STRATEGY },
    removeOnComplete: { age: Math.ceil(dedupeWindowMs / 1000) },
    removeOnFail: false,
  });
  const recordTtl = (expiresAt: number, now: number) => Math.max(expiresAt, now) - now + dedupeWindowMs;

  async function enqueue(plan: Plan, now: number): Promise<EnqueueResult> {
    await whenReady(client, timeoutMs);
    const types = new Set<TaskType>([...plan.tasks.map((task) => task.type), ...plan.scopeChanges.map((change) => change.type)]);
    const sent = await Promise.all(
      [...types].map(async (type) => {
        const { queue, bullClient } = await clientOf(type);
        const bullTransaction = bullClient.multi();
        // BullMQ's transaction is an ioredis MULTI with BullMQ's scripts; ours are defined
        // on the same connection, so both kinds of script go into the same MULTI.
        const transaction = bullTransaction as unknown as ChainableCommander;
        const readers = queueType(
          transaction,
          bullTransaction,
          queue,
          plan.tasks.filter((task) => task.type === type),
          plan.scopeChanges.filter((change) => change.type === type),
          plan.conversationId,
          now,
        );
        const replies = (await transaction.exec()) ?? [];
        return readers(replies);
      }),
    );
    const result: EnqueueResult = { conversationId: plan.conversationId, tasks: [], skipped: [...plan.skipped] };
    for (const entries of sent) {
      for (const entry of entries) {
        if ('reason' in entry) result.skipped.push(entry);
        else result.tasks.push(entry);
      }
    }
    const order = (type: TaskType) => [...types].indexOf(type);
    result.tasks.sort((a, b) => order(a.type) - order(b.type));
    return result;
  }

  type Entry = EnqueuedTask | { type: TaskType; reason: SkipReason };
  type Replies = [Error | null, unknown][];

  /** Queues one type's commands on its transaction; returns the reader of their replies. */
  function queueType(
    transaction: ChainableCommander,
    bullTransaction: IRedisTransaction,
    queue: Queue,
    tasks: PlannedTask[],
    scopeChanges: ScopeOnlyChange[],
    conversationId: string,
    now: number,
  ): (replies: Replies) => Entry[] {
    const keys = typeKeys(prefix, tasks[0]?.type ?? scopeChanges[0]!.type);
    const backend = queue.getBackend();
    const readers: ((replies: Replies, at: number) => [Entry | undefined, number])[] = [];

    for (const task of tasks) {
      if (task.scope) {
        queueScript(transaction, 'claimScope', keys.scope(task.scope.id), [
          keys.base, task.scope.action, task.jobId, task.scope.version, encodeKeyPart(conversationId),
          task.idempotencyKey, task.expiresAt, now, recordTtl(task.expiresAt, now), task.runAt,
        ]);
      } else {
        queueScript(transaction, 'prepareAdd', keys.job(task.jobId), [keys.base, task.jobId, task.expiresAt]);
      }
      const job = new Job(queue, task.type, task.data, jobOptions(task, now), task.jobId);
      // Queues BullMQ's add script on the transaction synchronously (the promise only
      // reports its reply, which we read from exec() below).
      backend.addJobToTransaction(bullTransaction, job.asJSON(), task.jobId, {}, queue.keys).catch(() => undefined);
      if (task.scope) queueScript(transaction, 'settleScope', `${keys.base}scope-txn`, [keys.base, task.jobId]);
      if (task.expired) {
        queueScript(transaction, 'expireJobs', keys.expiry, [
          keys.base, now, 'expired: already past expiresAt when the outcome was enqueued', 1, now, 1, task.jobId,
        ]);
      }
      readers.push((replies, at) => {
        const first = reply(replies, at, task, 'prepare');
        reply(replies, at + 1, task, 'add');
        let next = at + 2;
        let decision = 'current';
        if (task.scope) decision = String(reply(replies, next++, task, 'settle'));
        if (task.expired) reply(replies, next++, task, 'expire');
        if (decision === 'stale') return [{ type: task.type, reason: 'superseded' }, next];
        const [created, runAt, expiresAt] = task.scope
          ? [(first as unknown[])[1] === 1, (first as unknown[])[2], (first as unknown[])[3]]
          : [(first as unknown[])[0] === 1, (first as unknown[])[1], (first as unknown[])[2]];
        const entry: EnqueuedTask = {
          type: task.type,
          jobId: task.jobId,
          idempotencyKey: task.idempotencyKey,
          runAt: toIso(created || !runAt ? task.runAt : Number(runAt)),
          expiresAt: toIso(created || !expiresAt ? task.expiresAt : Number(expiresAt)),
          created,
          expired: task.expired,
        };
        return [entry, next];
      });
    }
    for (const change of scopeChanges) {
      queueScript(transaction, 'claimScope', keys.scope(change.scope.id), [
        keys.base, change.scope.action, '', change.scope.version, encodeKeyPart(conversationId), '', 0, now,
        recordTtl(0, now), 0,
      ]);
      readers.push((replies, at) => {
        reply(replies, at, change, 'claim');
        return [undefined, at + 1];
      });
    }
    return (replies) => {
      const entries: Entry[] = [];
      let at = 0;
      for (const read of readers) {
        const [entry, next] = read(replies, at);
        if (entry) entries.push(entry);
        at = next;
      }
      return entries;
    };
  }

  function reply(replies: Replies, at: number, task: { type: TaskType }, step: string): unknown {
    const [error, value] = replies[at] ?? [new Error('missing reply'), undefined];
    if (error) throw new EnqueueError(`enqueueing ${task.type} failed at ${step}: ${error.message}`);
    if (typeof value === 'number' && value < 0) throw new EnqueueError(`enqueueing ${task.type} failed at ${step}: BullMQ error code ${value}`);
    return value;
  }

  async function conversationEnded(input: unknown): Promise<EnqueueResult> {
    const outcome = parseConversationOutcome(input);
    const now = clock();
    const plan = planOutcome(outcome, taskConfigs, now);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RedisUnavailableError(
              `${where} did not answer within ${timeoutMs} ms; ` +
                'the outcome may not have been enqueued (calling conversationEnded again is safe: it is idempotent)',
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([enqueue(plan, now), deadline]);
    } catch (error) {
      if (error instanceof RedisUnavailableError || error instanceof EnqueueError) throw error;
      throw new RedisUnavailableError(
        `${where} failed: ${(error as Error).message}; ` +
          'the outcome may not have been enqueued (calling conversationEnded again is safe: it is idempotent)',
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    conversationEnded,
    taskConfigs,
    async close() {
      await Promise.all([...queues.values()].map((queue) => queue.close().catch(() => undefined)));
      if (ownsConnection) client.disconnect();
    },
  };
}
