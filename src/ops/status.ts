/**
 * The status of a conversation's follow-up work: one entry per task the conversation's
 * outcome created, whatever became of it.
 *
 * States:
 *   scheduled      waiting for its run time (a reminder, a survey)
 *   waiting        ready, waiting for a worker
 *   active         a worker is delivering it now
 *   retrying       an attempt failed with a retryable error; the next one is scheduled
 *   completed      delivered
 *   dead_lettered  in the dead-letter queue (see deadLetterReason)
 *   replaced       a reminder replaced by a later outcome for its booking (rescheduled)
 *   cancelled      a reminder removed by a later cancellation of its booking
 *
 * Tasks owned by a conversation are found by their job ids, derived from the conversation
 * id; a booking's reminder is found through the record of the conversation that created
 * it. An unknown conversation has no entries. A completed task disappears once the dedupe
 * window has passed (its job is removed).
 */
import type { TaskType } from '../tasks/catalog.js';
import { allTaskDefinitions } from '../tasks/catalog.js';
import { conversationTaskKey, jobIdFor } from '../tasks/job-id.js';
import { typeKeys, type TypeKeys } from '../redis/keys.js';
import { readJobHash, type JobHashView } from '../redis/bullmq-compat.js';
import type { RedisClient } from '../redis/scripts.js';
import { deadLetterReasonOf, type DeadLetterReason } from '../redis/dead-letter-queue.js';
import { isoOrNull, toIso } from '../contract/time.js';
import { historyOf, type AttemptRecord } from '../redis/attempt-history.js';

export const TASK_STATES = [
  'scheduled',
  'waiting',
  'active',
  'retrying',
  'completed',
  'dead_lettered',
  'replaced',
  'cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export interface TaskStatus {
  type: TaskType;
  jobId: string;
  idempotencyKey: string;
  state: TaskState;
  /** Provider calls made, the successful one included. */
  attempts: number;
  lastError: string | null;
  deadLetterReason: DeadLetterReason | null;
  runAt: string | null;
  expiresAt: string | null;
  finishedAt: string | null;
  /** Every attempt (the last 20), oldest first: time, duration, result, destination, status, error. */
  history: AttemptRecord[];
}

interface JobSnapshot {
  hash: Record<string, string>;
  fields: JobHashView;
  locked: boolean;
  delayed: boolean;
  deadLettered: boolean;
}

async function snapshot(client: RedisClient, keys: TypeKeys, jobId: string): Promise<JobSnapshot> {
  const replies = (await client
    .pipeline()
    .hgetall(keys.job(jobId))
    .exists(keys.lock(jobId))
    .zscore(keys.delayed, jobId)
    .zscore(keys.failed, jobId)
    .exec()) as [Error | null, unknown][];
  const [hash, locked, delayed, failed] = replies.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
  return {
    hash: hash as Record<string, string>,
    fields: readJobHash(hash as Record<string, string>),
    locked: locked === 1,
    delayed: delayed !== null,
    deadLettered: failed !== null,
  };
}

function stateOf(job: JobSnapshot): TaskState {
  const attempts = job.fields.attemptsMade;
  if (job.deadLettered) return 'dead_lettered';
  if (job.fields.finishedOn) return job.fields.returnvalue?.includes('"superseded":true') ? 'replaced' : 'completed';
  if (job.locked) return 'active';
  if (job.delayed) return attempts > 0 ? 'retrying' : 'scheduled';
  return attempts > 0 ? 'retrying' : 'waiting';
}

function toStatus(
  type: TaskType,
  jobId: string,
  idempotencyKey: string,
  job: JobSnapshot,
  override?: TaskState,
): TaskStatus {
  let data: Record<string, unknown> = {};
  try {
    data = JSON.parse(job.fields.data ?? '{}') as Record<string, unknown>;
  } catch {
    // unreadable data: times stay unknown
  }
  const state = override ?? stateOf(job);
  return {
    type,
    jobId,
    idempotencyKey: typeof data.idempotencyKey === 'string' ? data.idempotencyKey : idempotencyKey,
    state,
    attempts: job.fields.attemptsMade,
    lastError: job.fields.failedReason ?? null,
    deadLetterReason: state === 'dead_lettered' ? deadLetterReasonOf(job.hash) : null,
    runAt: isoOrNull(data.runAt),
    expiresAt: isoOrNull(data.expiresAt),
    finishedAt: job.fields.finishedOn ? toIso(job.fields.finishedOn) : null,
    history: historyOf(job.hash),
  };
}

/** The status of every task of a conversation; an empty list for an unknown conversation. */
export async function conversationStatus(
  client: RedisClient,
  prefix: string,
  conversationId: string,
): Promise<TaskStatus[]> {
  const entries = await Promise.all(
    allTaskDefinitions().map(async (definition): Promise<TaskStatus | undefined> => {
      const keys = typeKeys(prefix, definition.type);
      if (!definition.scope) {
        const idempotencyKey = conversationTaskKey(conversationId, definition.type);
        const jobId = jobIdFor(idempotencyKey);
        const job = await snapshot(client, keys, jobId);
        return Object.keys(job.hash).length ? toStatus(definition.type, jobId, idempotencyKey, job) : undefined;
      }
      const record = await client.hgetall(keys.conversation(conversationId));
      if (!record.jobId) return undefined;
      const job = await snapshot(client, keys, record.jobId);
      const superseded =
        record.state === 'replaced' || record.state === 'cancelled' ? (record.state as TaskState) : undefined;
      if (!Object.keys(job.hash).length && !superseded) return undefined;
      if (!Object.keys(job.hash).length) {
        // The job was removed when it was replaced or cancelled: the record keeps its times.
        job.hash = { data: JSON.stringify({ runAt: Number(record.runAt), expiresAt: Number(record.expiresAt) }) };
      }
      return toStatus(definition.type, record.jobId, record.idempotencyKey ?? '', job, superseded);
    }),
  );
  return entries.filter((entry): entry is TaskStatus => entry !== undefined);
}
