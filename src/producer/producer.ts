/**
 * The producer: what a voice-agent server embeds. `conversationEnded(outcome)` turns a
 * conversation outcome into jobs and returns in milliseconds.
 *
 * 1. Validate the outcome. Bad input throws OutcomeValidationError listing every field;
 *    nothing reaches Redis.
 * 2. Plan it with the task catalog (plan.ts): which tasks, which keys, when each runs and
 *    expires.
 * 3. Enqueue the whole plan in one round trip: one script call (enqueue-tasks.lua) per slot
 *    the tasks' keys fall in: on standalone Redis one call for every task, on Redis Cluster
 *    one per type (each to the shard of its type's slot), all written before any reply is
 *    awaited. For each task, atomically, the script writes the job as BullMQ's `Queue.add`
 *    does (bullmq-compat.ts)
 *    and in the same atomic step indexes it by expiry, counts it, moves a task that is
 *    already expired into the dead-letter queue, and for a reminder claims its booking
 *    (replacing or removing the booking's previous reminder).
 * 4. Resolve with the job ids. The job id is derived from the idempotency key, so a
 *    repeated outcome (concurrent, or long after the first jobs completed) names the
 *    existing jobs and creates nothing: `created` is false for them.
 *
 * Deduplication lasts as long as the job exists: a completed job is kept for the dedupe
 * window (default 24 h) and then removed; a dead-lettered job is kept until it is
 * replayed or purged. With Redis unreachable the call rejects within the deadline
 * (default 2 s) with RedisUnavailableError instead of hanging the voice agent.
 */
import type { JobsOptions } from 'bullmq';
import { parseConversationOutcome, type ConversationOutcome } from '../contract/conversation-outcome.js';
import { producerMetrics } from './producer-metrics.js';
import { planOutcome, type Plan, type PlannedTask, type SkipReason } from '../tasks/plan.js';
import {
  createRedisConnection,
  describeRedisTarget,
  primaryFor,
  scriptGroupOf,
  whenReady,
  type RedisTarget,
} from '../redis/connection.js';
import { encodeKeyPart } from '../tasks/job-id.js';
import { queueName, typeKeys } from '../redis/keys.js';
import {
  DEFAULT_DEDUPE_WINDOW_MS,
  DEFAULT_PREFIX,
  DEFAULT_PRODUCER_TIMEOUT_MS,
  DEFAULT_REDIS_URL,
} from '../config/defaults.js';
import { BACKOFF_STRATEGY, bullmqAddCommand, Queue } from '../redis/bullmq-compat.js';
import {
  defineScripts,
  enqueueTasks,
  settleScope,
  type EnqueueTask,
  type RedisClient,
  type SettleOptions,
} from '../redis/scripts.js';
import { SETTLE_TTL_MS } from '../redis/conversation-settlement.js';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { recordError, traceContextOf, tracer, type StoredTraceContext } from '../contract/tracing.js';
import {
  resolveTaskConfigs,
  taskTypes,
  type TaskConfigs,
  type TaskOverrides,
  type TaskType,
} from '../tasks/catalog.js';
import { systemClock, toIso, type Clock } from '../contract/time.js';

/**
 * Where Redis is: give at most one of `redisUrl`, `redis` and `connection` (none: the
 * default URL). Giving two is an error.
 */
export interface ProducerOptions {
  /** Redis URL (redis:// or rediss://); default redis://127.0.0.1:6379. */
  redisUrl?: string;
  /**
   * Standalone, Redis Cluster or Sentinel, with TLS files: the choices of REDIS_URL,
   * REDIS_CLUSTER_NODES and REDIS_SENTINELS (`loadConfig().redis` is one).
   */
  redis?: RedisTarget;
  /** A ready connection of the caller's (`Redis` or `Cluster`); the producer does not close it. */
  connection?: RedisClient;
  /**
   * Replicas that must hold a task before `conversationEnded` resolves (Redis WAIT on the
   * primary of each slot written, within the call's deadline); default 0: acknowledged
   * once the primary has it. Fewer replicas within the deadline: RedisUnavailableError.
   */
  waitReplicas?: number;
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

export function createProducer(options: ProducerOptions = {}): Producer {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? DEFAULT_PRODUCER_TIMEOUT_MS;
  const dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  const taskConfigs = resolveTaskConfigs(options.tasks);
  const given = (['redisUrl', 'redis', 'connection'] as const).filter((name) => options[name] !== undefined);
  if (given.length > 1)
    throw new TypeError(`createProducer: give one of redisUrl, redis and connection, not ${given.join(' and ')}`);
  const waitReplicas = options.waitReplicas ?? 0;
  if (!Number.isInteger(waitReplicas) || waitReplicas < 0)
    throw new TypeError('createProducer: waitReplicas: expected an integer of 0 or more');
  const target = options.redis ?? options.redisUrl ?? DEFAULT_REDIS_URL;
  const ownsConnection = !options.connection;
  const where = ownsConnection ? describeRedisTarget(target) : 'Redis (the connection given to createProducer)';
  const client: RedisClient =
    options.connection ?? createRedisConnection('producer', { redis: target, timeoutMs, name: 'aftercall-producer' });
  defineScripts(client);

  // One BullMQ Queue per type, made once: it builds each add's command (bullmqAddCommand).
  // skipMetasUpdate: a producer writes nothing to Redis but the jobs it is asked for.
  const queues = new Map<TaskType, Queue>(
    taskTypes.map((type) => {
      const queue = new Queue(queueName(type), { connection: client, prefix, skipMetasUpdate: true });
      queue.on('error', () => undefined); // surfaced by the calls themselves
      return [type, queue];
    }),
  );
  const keysByType = new Map(taskTypes.map((type) => [type, typeKeys(prefix, type)]));
  // Tasks whose keys share a slot go in one script call: it pays a script call's own cost (its
  // dispatch, the set-up of its functions, the options' decode) once. Five calls in one cut
  // Redis' script time per five-task outcome by about a sixth (381 -> 327 µs, interleaved runs).
  const groupByType = new Map(taskTypes.map((type) => [type, scriptGroupOf(client, keysByType.get(type)!.base)]));
  const removeOnComplete = { age: Math.ceil(dedupeWindowMs / 1000) };
  const jobOptions = (task: PlannedTask, now: number): JobsOptions => ({
    jobId: task.jobId,
    timestamp: now,
    delay: Math.max(0, task.runAt - now),
    attempts: task.attempts,
    backoff: { type: BACKOFF_STRATEGY },
    removeOnComplete,
    removeOnFail: false,
  });
  const recordTtl = (expiresAt: number, now: number) => Math.max(expiresAt, now) - now + dedupeWindowMs;

  async function enqueue(
    plan: Plan,
    now: number,
    outcome: ConversationOutcome,
    traceContext?: StoredTraceContext,
  ): Promise<EnqueueResult> {
    await whenReady(client, timeoutMs);
    // One command per slot group (standalone: one; cluster: one per type), all written to the
    // connection before any reply is awaited: one round trip. (Plain commands rather than an
    // ioredis pipeline: a pipeline object per call costs the voice agent's process slow garbage
    // collections.) On a cluster, each command goes to the shard of its slot.
    const conversation = encodeKeyPart(plan.conversationId);
    const pending: Promise<Entry | Entry[] | undefined>[] = [];
    // Conversation metrics (redis/conversation-settlement.ts): the first task is the anchor; its
    // enqueue counts the conversation and starts the countdown of the tasks workers will finish.
    const anchor = plan.tasks[0];
    const settle: SettleOptions | undefined = anchor && {
      outcome: outcome.outcome,
      sentiment: outcome.sentiment ?? 'unknown',
      tasks: plan.tasks.filter((task) => !task.expired).length,
      partial: plan.tasks.some((task) => task.expired),
      solo: plan.tasks.length === 1 && !plan.tasks[0]!.expired,
      ttl: Math.max(...plan.tasks.map((task) => task.expiresAt), now) - now + SETTLE_TTL_MS,
    };
    const groups = new Map<number, { tasks: PlannedTask[]; calls: EnqueueTask[] }>();
    for (const task of plan.tasks) {
      const keys = keysByType.get(task.type)!;
      const data = {
        ...task.data,
        anchor: anchor!.type,
        ...(settle?.solo && { solo: true }),
        ...(traceContext && { trace: traceContext }),
      };
      const add = bullmqAddCommand(queues.get(task.type)!, task.type, data, jobOptions(task, now), task.jobId);
      const slot = groupByType.get(task.type)!;
      const group = groups.get(slot) ?? { tasks: [], calls: [] };
      groups.set(slot, group);
      group.tasks.push(task);
      group.calls.push({
        add,
        keys,
        options: {
          jobId: task.jobId,
          conversation,
          ...(task === anchor && settle && { settle }),
          expiresAt: task.expiresAt,
          runAt: task.runAt,
          now,
          expired: task.expired,
          ...(task.expired && { message: 'expired: already past expiresAt when the outcome was enqueued' }),
          ...(task.scope && {
            scope: {
              id: task.scope.id,
              action: task.scope.action,
              version: task.scope.version,
              conversation,
              idempotencyKey: task.idempotencyKey,
              ttl: recordTtl(task.expiresAt, now),
            },
          }),
        },
      });
    }
    for (const { tasks, calls } of groups.values()) pending.push(settleTasks(tasks, enqueueTasks(client, calls)));
    for (const change of plan.scopeChanges) {
      const keys = keysByType.get(change.type)!;
      const settled = settleScope(client, keys, change.scope.id, {
        action: change.scope.action,
        version: change.scope.version,
        conversation,
        ttl: dedupeWindowMs,
        now,
      });
      pending.push(step(settled, change.type, 'settle').then(() => undefined));
    }
    const entries = await Promise.all(pending);
    if (waitReplicas > 0) await replicated(plan);
    const result: EnqueueResult = { conversationId: plan.conversationId, tasks: [], skipped: [...plan.skipped] };
    for (const entry of entries.flat()) {
      if (!entry) continue;
      if ('reason' in entry) result.skipped.push(entry);
      else result.tasks.push(entry);
    }
    return result;
  }

  /**
   * WAIT on the primary of every slot this call wrote to (on a cluster, one per type's
   * shard): it returns once that many replicas have every write this connection made there.
   */
  async function replicated(plan: Plan): Promise<void> {
    const primaries = new Set(
      [...plan.tasks, ...plan.scopeChanges].map((task) => primaryFor(client, keysByType.get(task.type)!.base)),
    );
    const acknowledged = await Promise.all(
      [...primaries].map((primary) => primary.call('WAIT', waitReplicas, timeoutMs) as Promise<number>),
    );
    const fewest = Math.min(...acknowledged);
    if (fewest < waitReplicas)
      throw unavailable(
        `wrote the tasks, but only ${fewest} of the ${waitReplicas} replicas required (REDIS_WAIT_REPLICAS) acknowledged them within ${timeoutMs} ms`,
      );
  }

  type Entry = EnqueuedTask | { type: TaskType; reason: SkipReason };

  /** Redis answered with an error: EnqueueError; no answer (timeout, connection lost) is left to conversationEnded. */
  async function step<T>(promise: Promise<T>, type: TaskType, name: string): Promise<T> {
    try {
      return await promise;
    } catch (error) {
      if ((error as Error).name !== 'ReplyError') throw error;
      throw new EnqueueError(`enqueueing ${type} failed at ${name}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The entries of one script call's tasks, from its replies (one per task, in order). */
  async function settleTasks(tasks: PlannedTask[], replies: Promise<unknown[][]>): Promise<Entry[]> {
    const all = await step(replies, tasks[0]!.type, 'enqueue');
    return tasks.map((task, index) => entryOf(task, all[index]!));
  }

  /** A task's entry from its reply: created, existing (with its own times), stale, or BullMQ's error code. */
  function entryOf(task: PlannedTask, reply: unknown[]): Entry {
    const [outcome, runAt, expiresAt] = reply;
    if (outcome === 'stale') return { type: task.type, reason: 'superseded' };
    if (outcome === 'error')
      throw new EnqueueError(`enqueueing ${task.type} failed: BullMQ's add answered ${String(reply[1])}`);
    const created = outcome === 'created';
    return {
      type: task.type,
      jobId: task.jobId,
      idempotencyKey: task.idempotencyKey,
      runAt: toIso(created || !runAt ? task.runAt : Number(runAt)),
      expiresAt: toIso(created || !expiresAt ? task.expiresAt : Number(expiresAt)),
      created,
      expired: task.expired,
    };
  }

  const unavailable = (detail: string, cause?: unknown) =>
    new RedisUnavailableError(
      `${where} ${detail}; the outcome may not have been enqueued (calling conversationEnded again is safe: it is idempotent)`,
      cause === undefined ? undefined : { cause },
    );
  // The connection aftercall makes bounds every command (commandTimeout); a connection
  // given by the caller may not, so its calls race a deadline of their own.
  const commandsAreBounded =
    ownsConnection && Number((client as { options?: { commandTimeout?: number } }).options?.commandTimeout) > 0;

  async function conversationEnded(input: unknown): Promise<EnqueueResult> {
    const started = performance.now();
    let outcome: ConversationOutcome;
    try {
      outcome = parseConversationOutcome(input);
    } catch (error) {
      producerMetrics.outcomes.inc({ result: 'rejected' });
      throw error;
    }
    const now = clock();
    const plan = planOutcome(outcome, taskConfigs, now);
    let timer: NodeJS.Timeout | undefined;
    // Inside an active trace: a span of its own, whose context every job stores (contract/tracing.ts).
    const span = trace.getActiveSpan()
      ? tracer().startSpan('aftercall.enqueue', {
          kind: SpanKind.PRODUCER,
          attributes: { 'aftercall.conversation_id': outcome.conversationId, 'aftercall.tasks': plan.tasks.length },
        })
      : undefined;
    const traceContext = span && traceContextOf(trace.setSpan(context.active(), span));
    try {
      let result: EnqueueResult;
      if (commandsAreBounded) {
        result = await enqueue(plan, now, outcome, traceContext);
      } else {
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(unavailable(`did not answer within ${timeoutMs} ms`)), timeoutMs);
        });
        result = await Promise.race([enqueue(plan, now, outcome, traceContext), deadline]);
      }
      producerMetrics.outcomes.inc({ result: 'accepted' });
      for (const task of result.tasks) producerMetrics.tasks.inc({ type: task.type, created: String(task.created) });
      producerMetrics.duration.observe((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      if (span) recordError(span, error);
      producerMetrics.outcomes.inc({ result: 'unavailable' });
      if (error instanceof RedisUnavailableError || error instanceof EnqueueError) throw error;
      const message = (error as Error).message;
      throw unavailable(
        /timed out/i.test(message) ? `did not answer within ${timeoutMs} ms` : `failed: ${message}`,
        error,
      );
    } finally {
      clearTimeout(timer);
      span?.end();
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
