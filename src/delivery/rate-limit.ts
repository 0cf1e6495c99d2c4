/**
 * Rate limits of a destination: what an operator configures (`RESEND_RATE_LIMIT=2/s`) and
 * what a provider states in its response headers (IETF draft 6, which Resend follows:
 * `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`, and `ratelimit-policy:
 * 2;w=1` where sent). The fleet enforces the lower of the two; a configured limit is the
 * ceiling.
 */
import { z } from 'zod';
import { DAY, HOUR, MINUTE, SECOND } from '../contract/time.js';

export interface RateLimit {
  /** Requests allowed in any window of `periodMs`. */
  limit: number;
  periodMs: number;
}

const PERIODS: Record<string, number> = {
  ms: 1,
  s: SECOND,
  sec: SECOND,
  second: SECOND,
  m: MINUTE,
  min: MINUTE,
  minute: MINUTE,
  h: HOUR,
  hour: HOUR,
  d: DAY,
  day: DAY,
};
const SPEC = /^\s*(\d+)\s*\/\s*(\d+)?\s*([a-z]+)\s*$/;

/** Parses `2/s`, `100/min`, `5000/h` (also `10/5s`); undefined when it is not one. */
export function parseRateLimit(text: string): RateLimit | undefined {
  const match = SPEC.exec(text.toLowerCase());
  if (!match) return undefined;
  const unit = PERIODS[match[3]!];
  const limit = Number(match[1]);
  const periodMs = (match[2] ? Number(match[2]) : 1) * (unit ?? Number.NaN);
  if (!Number.isFinite(periodMs) || periodMs <= 0 || !Number.isInteger(limit) || limit < 1) return undefined;
  return { limit, periodMs };
}

export const formatRateLimit = (rate: RateLimit) =>
  rate.periodMs === SECOND
    ? `${rate.limit}/s`
    : rate.periodMs === MINUTE
      ? `${rate.limit}/min`
      : rate.periodMs === HOUR
        ? `${rate.limit}/h`
        : `${rate.limit}/${rate.periodMs}ms`;

/** A `<X>_RATE_LIMIT` variable: unset means no limit of ours. */
export const rateLimitVariable = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined || text.trim() === '') return undefined;
    const rate = parseRateLimit(text);
    if (rate) return rate;
    ctx.addIssue({ code: 'custom', message: 'expected a rate such as 2/s, 100/min or 5000/h' });
    return z.NEVER;
  });

/** What a response's rate-limit headers say, when they say anything. */
export interface StatedRateLimit extends RateLimit {
  remaining?: number;
  /** Milliseconds until the window resets. */
  resetMs?: number;
}

type Headers = Readonly<Record<string, string | string[] | undefined>> | null | undefined;

const header = (headers: Headers, name: string) => {
  if (!headers) return undefined;
  const value = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
};

/**
 * Reads `ratelimit-limit` (a number, or draft-7's `limit=2, remaining=1, reset=1`),
 * `ratelimit-remaining`, `ratelimit-reset` (seconds) and the window from
 * `ratelimit-policy` (`2;w=1`), one second when no policy says otherwise.
 */
export function readRateLimitHeaders(headers: Headers): StatedRateLimit | undefined {
  const limitText = header(headers, 'ratelimit-limit');
  if (!limitText) return undefined;
  const limit = Number.parseInt(limitText, 10);
  if (!Number.isInteger(limit) || limit < 1) return undefined;
  const window = /(?:^|[;,\s])w=(\d+)/.exec(header(headers, 'ratelimit-policy') ?? '');
  const periodMs = window ? Number(window[1]) * SECOND : SECOND;
  const remaining = Number.parseInt(header(headers, 'ratelimit-remaining') ?? '', 10);
  const reset = Number.parseFloat(header(headers, 'ratelimit-reset') ?? '');
  return {
    limit,
    periodMs: periodMs > 0 ? periodMs : SECOND,
    ...(Number.isInteger(remaining) && remaining >= 0 && { remaining }),
    ...(Number.isFinite(reset) && reset >= 0 && { resetMs: Math.round(reset * SECOND) }),
  };
}
