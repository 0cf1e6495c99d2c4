/**
 * The two kinds of delivery failure. They decide a job's fate:
 * - retryable (network failure, timeout, 408, 429, 5xx, anything unexpected): the job
 *   is tried again after a backoff, honouring the provider's Retry-After;
 * - terminal (every other 4xx, an invalid recipient, a misconfiguration): a retry cannot
 *   fix it, so the job goes to the dead-letter queue at once with reason `terminal`.
 * Each provider adapter maps its own responses to these in one place.
 */

import type { StatedRateLimit } from './rate-limit.js';

export interface DeliveryErrorDetails {
  provider: string;
  /** HTTP status, when there was a response. */
  status?: number;
  /** Provider error code, when it gives one. */
  code?: string | number;
  /** What the response's rate-limit headers said, when they said anything. */
  rateLimit?: StatedRateLimit;
}

export class RetryableDeliveryError extends Error {
  override readonly name = 'RetryableDeliveryError';
  constructor(
    message: string,
    /**
     * `rateLimited`: the destination answered 429 ("not now"): the fleet holds it and the
     * job waits, using no attempt.
     */
    readonly details: DeliveryErrorDetails & { retryAfterMs?: number; rateLimited?: boolean },
  ) {
    super(message);
  }
}

export class TerminalDeliveryError extends Error {
  override readonly name = 'TerminalDeliveryError';
  constructor(
    message: string,
    /** `gone`: a 410 Gone; the destination is held until an operator closes it. */
    readonly details: DeliveryErrorDetails & { configuration?: boolean; gone?: boolean },
  ) {
    super(message);
  }
}

/**
 * Reads an HTTP Retry-After value (delta-seconds or an HTTP date) as milliseconds from
 * `now`; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A retryable failure that carries the provider's Retry-After (as milliseconds) when it sent one. */
export function retryableError(
  message: string,
  details: DeliveryErrorDetails,
  retryAfterHeader: string | null | undefined,
  now: number,
): RetryableDeliveryError {
  const retryAfterMs = parseRetryAfter(retryAfterHeader, now);
  const rateLimited = details.status === 429 || details.code === 20429 || details.code === 'rate_limit_exceeded';
  return new RetryableDeliveryError(message, {
    ...details,
    ...(retryAfterMs !== undefined && { retryAfterMs }),
    ...(rateLimited && { rateLimited }),
  });
}

/** Retryable or terminal, from an HTTP status; undefined for success. */
export function classifyHttpStatus(status: number): 'retryable' | 'terminal' | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 408 || status === 429 || status >= 500) return 'retryable';
  return 'terminal';
}
