/**
 * The two kinds of delivery failure. They decide a job's fate:
 * - retryable (network failure, timeout, 408, 429, 5xx, anything unexpected): the job
 *   is tried again after a backoff, honouring the provider's Retry-After;
 * - terminal (every other 4xx, an invalid recipient, a misconfiguration): a retry cannot
 *   fix it, so the job goes to the dead-letter queue at once with reason `terminal`.
 * Each provider adapter maps its own responses to these in one place.
 */

export interface DeliveryErrorDetails {
  provider: string;
  /** HTTP status, when there was a response. */
  status?: number;
  /** Provider error code, when it gives one. */
  code?: string | number;
}

export class RetryableDeliveryError extends Error {
  override readonly name = 'RetryableDeliveryError';
  constructor(
    message: string,
    readonly details: DeliveryErrorDetails & { retryAfterMs?: number },
  ) {
    super(message);
  }
}

export class TerminalDeliveryError extends Error {
  override readonly name = 'TerminalDeliveryError';
  constructor(
    message: string,
    readonly details: DeliveryErrorDetails & { configuration?: boolean },
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
  return new RetryableDeliveryError(message, { ...details, ...(retryAfterMs !== undefined && { retryAfterMs }) });
}

/** Retryable or terminal, from an HTTP status; undefined for success. */
export function classifyHttpStatus(status: number): 'retryable' | 'terminal' | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 408 || status === 429 || status >= 500) return 'retryable';
  return 'terminal';
}
