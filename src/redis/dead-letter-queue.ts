/**
 * The dead-letter queue: whatever could not be done, with the reason.
 *
 * Each task type's dead-letter store is BullMQ's failed set of its queue (same hash
 * slot), with the job kept whole: its data, its attempts and their history, its last error. Jobs get there
 * only through aftercall's own scripts, which take a job out of its list and into the
 * store in one step and record the reason:
 *   expired    its expiresAt passed before it could be delivered (at pickup, by the
 *              retry horizon, by the sweeper, or already when it was enqueued)
 *   exhausted  every attempt failed with a retryable error
 *   terminal   the provider refused it in a way a retry cannot fix
 *   invalid    its data did not match its schema when a worker read it
 * A job BullMQ fails by itself (a job that kept crashing its workers, stalled beyond the
 * limit) has no recorded reason and counts as `exhausted`.
 *
 * Nothing consumes the store automatically. Entries stay until they are replayed (the job
 * goes back to its queue with fresh attempts, optionally a new expiry) or purged. While
 * an entry exists, the same idempotency key is not enqueued again.
 *
 * The stores are presented as one dead-letter queue: `list` and `counts` span all types.
 */
import { readJobHash } from './bullmq-compat.js';
import { purgeDeadLetter, replayDeadLetter, type RedisClient } from './scripts.js';
import { typeKeys } from './keys.js';
import { taskTypes, type TaskType } from '../tasks/catalog.js';
import { isoOrNull, toIso } from '../contract/time.js';
import { historyOf, type AttemptRecord } from './attempt-history.js';

export const DEAD_LETTER_REASONS = ['expired', 'exhausted', 'terminal', 'invalid'] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

export interface DeadLetterEntry {
  type: TaskType;
  /** The original job id. */
  jobId: string;
  idempotencyKey: string | null;
  conversationId: string | null;
  reason: DeadLetterReason;
  lastError: string | null;
  /** Provider calls made. */
  attempts: number;
  createdAt: string | null;
  expiresAt: string | null;
  deadLetteredAt: string | null;
  /** Its attempts, oldest first (the last 20): attempt-history.ts. */
  history: AttemptRecord[];
  payload: unknown;
}

export interface ListOptions {
  types?: readonly TaskType[];
  reason?: DeadLetterReason;
  /** Dead-lettered at or after this time (epoch ms). */
  since?: number;
  /** Dead-lettered at or before this time (epoch ms). */
  until?: number;
  /** At most this many entries, newest first; default 1000. */
  limit?: number;
}

export type DeadLetterCounts = Record<TaskType, Record<DeadLetterReason, number>>;

const HASH_BATCH = 500;

export function isDeadLetterReason(value: string | undefined): value is DeadLetterReason {
  return DEAD_LETTER_REASONS.includes(value as DeadLetterReason);
}

/** The reason recorded on a dead-lettered job hash; a job BullMQ failed by itself has none and counts as exhausted. */
export function deadLetterReasonOf(hash: Record<string, string>): DeadLetterReason {
  return isDeadLetterReason(hash.deadLetterReason) ? hash.deadLetterReason : 'exhausted';
}

/**
 * Dead-letter depth by reason from the size of the failed set and the recorded counts:
 * jobs BullMQ failed by itself carry no recorded reason and count as exhausted.
 */
export function deadLetterCountsFrom(
  total: number,
  recorded: Record<string, string>,
): Record<DeadLetterReason, number> {
  const row = Object.fromEntries(
    DEAD_LETTER_REASONS.map((reason) => [reason, Math.max(0, Number(recorded[reason] ?? 0))]),
  ) as Record<DeadLetterReason, number>;
  row.exhausted += Math.max(0, total - DEAD_LETTER_REASONS.reduce((sum, reason) => sum + row[reason], 0));
  return row;
}

/** A dead-letter entry from a job hash (HGETALL); undefined when the hash is gone. */
export function entryFromJobHash(
  type: TaskType,
  jobId: string,
  hash: Record<string, string>,
): DeadLetterEntry | undefined {
  const fields = readJobHash(hash);
  if (!fields.data && !fields.finishedOn) return undefined;
  let data: Record<string, unknown> = {};
  let payload: unknown = fields.data ?? null;
  try {
    const parsed: unknown = JSON.parse(fields.data ?? 'null');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      data = parsed as Record<string, unknown>;
      payload = 'payload' in data ? data.payload : parsed;
    } else {
      payload = parsed;
    }
  } catch {
    // Unreadable data (an `invalid` entry): the raw text is the payload.
  }
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  return {
    type,
    jobId,
    idempotencyKey: text(data.idempotencyKey),
    conversationId: text(data.conversationId),
    reason: deadLetterReasonOf(hash),
    lastError: fields.failedReason ?? null,
    attempts: fields.attemptsMade,
    createdAt: isoOrNull(data.createdAt) ?? isoOrNull(fields.timestamp),
    expiresAt: isoOrNull(data.expiresAt),
    deadLetteredAt: isoOrNull(fields.finishedOn),
    history: historyOf(hash),
    payload,
  };
}

export class DeadLetterQueue {
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
  ) {}

  private types(types?: readonly TaskType[]): TaskType[] {
    return types?.length ? [...types] : [...taskTypes];
  }

  /** Entries across types, newest first. */
  async list(options: ListOptions = {}): Promise<DeadLetterEntry[]> {
    const limit = options.limit ?? 1000;
    const types = this.types(options.types);
    // The store's scores are the times of dead-lettering: a time range is a range of scores.
    const count = options.reason ? -1 : limit;
    const ids = await Promise.all(
      types.map((type) =>
        options.since === undefined && options.until === undefined
          ? this.client.zrevrange(typeKeys(this.prefix, type).failed, 0, count < 0 ? -1 : count - 1)
          : this.client.zrevrangebyscore(
              typeKeys(this.prefix, type).failed,
              options.until ?? '+inf',
              options.since ?? '-inf',
              'LIMIT',
              0,
              count,
            ),
      ),
    );
    const entries: DeadLetterEntry[] = [];
    for (const [index, type] of types.entries()) {
      const keys = typeKeys(this.prefix, type);
      const jobIds = ids[index]!;
      for (let start = 0; start < jobIds.length; start += HASH_BATCH) {
        const batch = jobIds.slice(start, start + HASH_BATCH);
        const pipeline = this.client.pipeline();
        for (const jobId of batch) pipeline.hgetall(keys.job(jobId));
        const replies = (await pipeline.exec()) ?? [];
        batch.forEach((jobId, at) => {
          const entry = entryFromJobHash(type, jobId, (replies[at]?.[1] ?? {}) as Record<string, string>);
          if (entry && (!options.reason || entry.reason === options.reason)) entries.push(entry);
        });
        if (!options.reason && entries.length >= limit) break;
      }
    }
    entries.sort((a, b) => (b.deadLetteredAt ?? '').localeCompare(a.deadLetteredAt ?? ''));
    return entries.slice(0, limit);
  }

  /** One entry with its history; undefined when the job is not in the dead-letter queue. */
  async get(type: TaskType, jobId: string): Promise<DeadLetterEntry | undefined> {
    const keys = typeKeys(this.prefix, type);
    const [[, hash], [, score]] = (await this.client
      .pipeline()
      .hgetall(keys.job(jobId))
      .zscore(keys.failed, jobId)
      .exec()) as [[unknown, Record<string, string>], [unknown, string | null]];
    return score === null ? undefined : entryFromJobHash(type, jobId, hash);
  }

  /**
   * Dead-letter depth by type and reason. One pipeline per type (each type lives in its
   * own hash slot), all sent at once: one round trip whatever the depth.
   */
  async counts(types?: readonly TaskType[]): Promise<DeadLetterCounts> {
    const selected = this.types(types);
    const replies = await Promise.all(
      selected.map((type) => {
        const keys = typeKeys(this.prefix, type);
        return this.client.pipeline().zcard(keys.failed).hgetall(keys.deadLetterCounts).exec();
      }),
    );
    const counts = {} as DeadLetterCounts;
    selected.forEach((type, index) => {
      const [[, total], [, byReason]] = replies[index] as [[unknown, number], [unknown, Record<string, string>]];
      counts[type] = deadLetterCountsFrom(Number(total), byReason);
    });
    return counts;
  }

  /**
   * Puts an entry back on its queue with fresh attempts. `expiresAt` gives it a new expiry
   * (required when the old one has passed: the job would only expire again). Returns
   * false when the job is not in the dead-letter queue (already replayed or purged).
   */
  async replay(type: TaskType, jobId: string, options: { expiresAt?: number; now?: number } = {}): Promise<boolean> {
    const keys = typeKeys(this.prefix, type);
    const raw = await this.client.hget(keys.job(jobId), 'data');
    if (raw === null) return false;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      throw new Error(`cannot replay ${type} job ${jobId}: its data is not JSON (purge it instead)`);
    }
    const now = options.now ?? Date.now();
    const expiresAt = options.expiresAt ?? (typeof data.expiresAt === 'number' ? data.expiresAt : Number.NaN);
    if (!Number.isFinite(expiresAt) || expiresAt <= now) {
      throw new Error(
        `cannot replay ${type} job ${jobId}: it expired at ${Number.isFinite(expiresAt) ? toIso(expiresAt) : '(unknown)'}; ` +
          'give it a new expiry (--extend <duration>)',
      );
    }
    const updated = options.expiresAt === undefined ? '' : JSON.stringify({ ...data, runAt: now, expiresAt });
    return (await replayDeadLetter(this.client, keys, { jobId, expiresAt }, updated)) === 1;
  }

  /** Deletes an entry for good. Returns false when it is not in the dead-letter queue. */
  async purge(type: TaskType, jobId: string): Promise<boolean> {
    const keys = typeKeys(this.prefix, type);
    return (await purgeDeadLetter(this.client, keys, jobId)) === 1;
  }
}
