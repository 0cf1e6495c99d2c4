/**
 * Default values, in one leaf module: the configuration, the producer, the workers and the
 * sweeper read them from here, so that reading the configuration loads none of them.
 * Durations are milliseconds.
 */

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** Prefix of every Redis key; producers and workers must agree. */
export const DEFAULT_PREFIX = 'aftercall';
/** Letters, digits, `_ . : -`, no braces (they would change the hash slot), at most 64 characters. */
export const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** How long a completed or dead-lettered task still absorbs a repeated outcome. */
export const DEFAULT_DEDUPE_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Deadline of one conversationEnded call when Redis is slow or away. */
export const DEFAULT_PRODUCER_TIMEOUT_MS = 2_000;

/** Expired jobs handled per Redis call during a sweep (each call blocks Redis while it runs). */
export const DEFAULT_SWEEP_BATCH_SIZE = 50;

export interface RetryPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  jitterMs: number;
}

/** Retry timing: 2 s base, doubling, capped at 60 s, plus up to 1 s of jitter. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = { baseDelayMs: 2_000, maxDelayMs: 60_000, jitterMs: 1_000 };
