/**
 * The providers' standing limits, as fixed windows per destination: the way Resend counts
 * its "N requests per second per team".
 *
 * Time is cut into windows of `windowMs` starting at multiples of it (epoch milliseconds of
 * the sandbox's clock). Each destination may pass `limit` requests per window; a request
 * above that is refused with 429 and does not use up the window. A request is counted when
 * it arrives, before anything about it is checked, so a refused login counts like a send.
 *
 * What a refused request learns, and what every answer of a provider that states its limit
 * carries (IETF draft-ietf-httpapi-ratelimit-headers-06, as Resend sends them):
 *
 *   ratelimit-limit      the limit
 *   ratelimit-remaining  requests left in the current window
 *   ratelimit-reset      whole seconds until the window ends (at least 1)
 *   retry-after          the same seconds, on a 429 only
 *
 * Changing a destination's limit keeps the count of the current window; changing its
 * window length starts a new one.
 */
import type { RateLimitConfig } from './faults.js';

/** What the limiter decided for one request. */
export interface LimitDecision {
  allowed: boolean;
  limit: number;
  windowMs: number;
  /** Requests left in the window after this one. */
  remaining: number;
  /** Whole seconds until the window ends, at least 1. */
  resetSeconds: number;
}

interface Window {
  windowMs: number;
  start: number;
  used: number;
}

export class FixedWindowLimiter {
  private windows = new Map<string, Window>();

  take(destination: string, config: RateLimitConfig, now: number): LimitDecision {
    const start = Math.floor(now / config.windowMs) * config.windowMs;
    let window = this.windows.get(destination);
    if (!window || window.windowMs !== config.windowMs || window.start !== start) {
      window = { windowMs: config.windowMs, start, used: 0 };
      this.windows.set(destination, window);
    }
    const allowed = window.used < config.limit;
    if (allowed) window.used += 1;
    return {
      allowed,
      limit: config.limit,
      windowMs: config.windowMs,
      remaining: Math.max(0, config.limit - window.used),
      resetSeconds: Math.max(1, Math.ceil((start + config.windowMs - now) / 1_000)),
    };
  }

  reset(): void {
    this.windows.clear();
  }
}

/** The `ratelimit-*` headers (draft 6) that describe `decision`; `retry-after` too when it refused. */
export function rateLimitHeaders(decision: LimitDecision): Record<string, string> {
  return {
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(decision.resetSeconds),
    ...(!decision.allowed && { 'retry-after': String(decision.resetSeconds) }),
  };
}

/** "2 requests per second", "100 requests per 60 seconds". */
export function describeLimit(limit: number, windowMs: number): string {
  const per =
    windowMs === 1_000 ? 'second' : windowMs % 1_000 === 0 ? `${windowMs / 1_000} seconds` : `${windowMs} milliseconds`;
  return `${limit} ${limit === 1 ? 'request' : 'requests'} per ${per}`;
}
