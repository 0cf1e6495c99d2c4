/**
 * Attempt history: what each attempt of a task came to, kept with the job.
 *
 * Terminology: an *attempt* is one pass of a worker's handler over the job that went as far as
 * its destination: a provider call (success, retryable_error, terminal_error), or a wait the
 * destination imposed instead of a call (rate_limited, circuit_open; those use no attempt of the
 * job's budget, but the on-call engineer wants to see them). Checks that end a job before its
 * destination is asked (invalid data, expired at pickup, replaced) are not attempts: the job's
 * dead-letter reason and last error tell those.
 *
 * Where it is kept: the job hash's `attemptHistory` field, a JSON array of the last
 * HISTORY_LIMIT entries (oldest first), so it lives and dies with the job: it stays in the
 * dead-letter entry (the job hash is the entry), survives a replay, and goes when BullMQ
 * removes a completed job. The entry of a *successful* attempt is not written to that field:
 * it travels in the job's return value (`returnvalue.attempt`), which BullMQ's own finishing
 * call stores anyway, so a task delivered at the first attempt costs no Redis command more
 * than one without history. Readers merge the two (historyOf).
 *
 * Every other entry is written in a call the handler makes anyway (the dead-lettering script,
 * the retrying-index update, now a script), except a postponement (rate limit, open circuit),
 * which costs one extra script call (record-attempt-2.lua).
 *
 * Error texts are scrubbed of e-mail addresses and phone numbers by the writer (worker) and
 * cut to HISTORY_ERROR_CHARS.
 */
import { isoOrNull } from '../contract/time.js';
import { BULLMQ_FIELDS } from './bullmq-compat.js';

export const ATTEMPT_RESULTS = [
  'success',
  'retryable_error',
  'terminal_error',
  'rate_limited',
  'circuit_open',
] as const;
export type AttemptResult = (typeof ATTEMPT_RESULTS)[number];

/** The job hash field holding the history (not one of BullMQ's: see bullmq-compat.ts BULLMQ_FIELDS). */
export const HISTORY_FIELD = 'attemptHistory';
/** Entries kept per job; older ones are dropped. */
export const HISTORY_LIMIT = 20;
/** Longest error text kept per entry. */
export const HISTORY_ERROR_CHARS = 500;

/** One entry as stored: short keys, epoch milliseconds. */
export interface StoredAttempt {
  /** The job's attempt number (BullMQ attemptsMade + 1 when it started). */
  n: number;
  /** Started (epoch ms). */
  at: number;
  /** Duration (ms). */
  ms: number;
  r: AttemptResult;
  /** Destination (resend, twilio, webhook:<type>). */
  d?: string;
  /** HTTP status. */
  s?: number;
  /** Error text, scrubbed. */
  e?: string;
  /** The attempt's span id (tracing), so a retry's span links to it. */
  sp?: string;
}

/** One entry as shown (status, dead letters, API). */
export interface AttemptRecord {
  attempt: number;
  startedAt: string;
  durationMs: number;
  result: AttemptResult;
  destination: string | null;
  status: number | null;
  error: string | null;
  /** The attempt's span id, when it was traced. */
  spanId?: string;
}

/** An attempt's stored entry; the optional fields that are undefined are left out. */
export function storedAttempt(entry: {
  attempt: number;
  startedAt: number;
  durationMs: number;
  result: AttemptResult;
  destination?: string | undefined;
  status?: number | undefined;
  error?: string | undefined;
  spanId?: string | undefined;
}): StoredAttempt {
  // Assigned field by field (not spread): every job builds one, on the worker's hot path.
  const stored: StoredAttempt = {
    n: entry.attempt,
    at: entry.startedAt,
    ms: Math.max(0, Math.round(entry.durationMs)),
    r: entry.result,
  };
  if (entry.destination !== undefined) stored.d = entry.destination;
  if (entry.status !== undefined) stored.s = entry.status;
  if (entry.error !== undefined) stored.e = entry.error.slice(0, HISTORY_ERROR_CHARS);
  if (entry.spanId !== undefined) stored.sp = entry.spanId;
  return stored;
}

function toRecord(value: unknown): AttemptRecord | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const entry = value as Record<string, unknown>;
  const startedAt = isoOrNull(entry.at);
  if (startedAt === null || !ATTEMPT_RESULTS.includes(entry.r as AttemptResult)) return undefined;
  return {
    attempt: typeof entry.n === 'number' ? entry.n : 0,
    startedAt,
    durationMs: typeof entry.ms === 'number' ? entry.ms : 0,
    result: entry.r as AttemptResult,
    destination: typeof entry.d === 'string' ? entry.d : null,
    status: typeof entry.s === 'number' ? entry.s : null,
    error: typeof entry.e === 'string' ? entry.e : null,
    ...(typeof entry.sp === 'string' && { spanId: entry.sp }),
  };
}

function parse(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * A job's attempts, oldest first, from its hash (HGETALL): the stored entries plus the
 * successful one in its return value. Unreadable entries are skipped.
 */
export function historyOf(hash: Record<string, string>): AttemptRecord[] {
  const stored = parse(hash[HISTORY_FIELD]);
  const records = (Array.isArray(stored) ? stored : [])
    .map(toRecord)
    .filter((entry): entry is AttemptRecord => !!entry);
  const returned = parse(hash[BULLMQ_FIELDS.returnvalue]);
  if (returned && typeof returned === 'object' && 'attempt' in returned) {
    const success = toRecord((returned as { attempt: unknown }).attempt);
    if (success) records.push(success);
  }
  return records.slice(-HISTORY_LIMIT);
}

/**
 * A history in a few words, for a list's cell: `retryable_error 503 ×2, terminal_error 400`
 * (runs of the same result and status counted); empty for no attempts.
 */
export function summarizeHistory(history: readonly Pick<AttemptRecord, 'result' | 'status'>[]): string {
  const runs: { label: string; count: number }[] = [];
  for (const entry of history) {
    const label = entry.status === null ? entry.result : `${entry.result} ${entry.status}`;
    const last = runs.at(-1);
    if (last?.label === label) last.count += 1;
    else runs.push({ label, count: 1 });
  }
  return runs.map((run) => (run.count > 1 ? `${run.label} ×${run.count}` : run.label)).join(', ');
}
