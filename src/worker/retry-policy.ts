/**
 * Retry timing: exponential backoff with jitter, capped, as BullMQ's named custom
 * strategy `aftercall`.
 *
 * The delay before attempt n+1 is min(base * 2^(n-1), cap) plus up to `jitter` of random
 * extra time (defaults: 2 s base, 60 s cap, 1 s jitter: 2, 4, 8, 16, 32, 60, 60 s ...),
 * so a burst of failures does not come back as a burst of retries. A provider's
 * Retry-After wins when it asks for longer.
 *
 * The job handler computes the delay itself (it must know it to decide whether the next
 * attempt would start after the task's expiry) and hands it to BullMQ on the error it
 * throws; the strategy returns that delay. It computes one only for an error that did
 * not come from the handler's retry decision.
 */
import type { BackoffStrategy } from 'bullmq';
import { DEFAULT_RETRY_POLICY as DEFAULTS, type RetryPolicy } from '../config/defaults.js';

export const DEFAULT_RETRY_POLICY: RetryPolicy = { ...DEFAULTS };
export type { RetryPolicy };

/** Delay before the attempt after attempt number `attempt` (1-based) failed. */
export function retryDelay(
  attempt: number,
  policy: RetryPolicy,
  retryAfterMs = 0,
  random: () => number = Math.random,
): number {
  const exponential = Math.min(policy.baseDelayMs * 2 ** Math.max(0, attempt - 1), policy.maxDelayMs);
  const jittered = exponential + Math.floor(random() * policy.jitterMs);
  return Math.max(jittered, retryAfterMs);
}

/** Carries the handler's chosen delay to the backoff strategy. */
export class RetryScheduledError extends Error {
  override readonly name = 'RetryScheduledError';
  constructor(
    message: string,
    readonly retryDelayMs: number,
  ) {
    super(message);
  }
}

export function backoffStrategy(policy: RetryPolicy): BackoffStrategy {
  return (attemptsMade, _type, error) =>
    error instanceof RetryScheduledError ? error.retryDelayMs : retryDelay(attemptsMade, policy);
}
