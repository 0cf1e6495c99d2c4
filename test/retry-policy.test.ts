/**
 * The retry delay formula, with the random source and the clock injected: 2 s base,
 * doubling, capped at 60 s, plus under 1 s of jitter; a provider's Retry-After wins only
 * when it asks for longer. Retry-After arrives as delta-seconds or an HTTP date, read
 * against the adapter's clock; an unreadable or past value asks for nothing.
 */
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/delivery/errors.js';
import { backoffStrategy, DEFAULT_RETRY_POLICY, RetryScheduledError, retryDelay } from '../src/worker/retry-policy.js';

const policy = DEFAULT_RETRY_POLICY;
const zero = () => 0;
/** The largest value Math.random can return. */
const nearOne = () => 1 - 2 ** -53;
const NOW = Date.parse('2026-11-26T12:00:00Z');

describe('retry delay', () => {
  it('is the documented default policy: 2 s base, 60 s cap, 1 s jitter', () => {
    expect(policy).toEqual({ baseDelayMs: 2_000, maxDelayMs: 60_000, jitterMs: 1_000 });
  });

  it.each([
    [1, 2_000],
    [2, 4_000],
    [3, 8_000],
    [4, 16_000],
    [5, 32_000],
    [6, 60_000],
    [7, 60_000],
    [20, 60_000],
  ])('after attempt %i, with random 0: %i ms', (attempt, expected) => {
    expect(retryDelay(attempt, policy, 0, zero)).toBe(expected);
  });

  it.each([1, 2, 3, 4, 5, 6, 7])('after attempt %i, with random near 1: under 1 s of jitter on top', (attempt) => {
    const base = retryDelay(attempt, policy, 0, zero);
    const jittered = retryDelay(attempt, policy, 0, nearOne);
    expect(jittered - base).toBe(999);
  });

  it('spreads a burst: the jitter follows the random source', () => {
    expect(retryDelay(1, policy, 0, () => 0.5)).toBe(2_500);
    expect(retryDelay(6, policy, 0, () => 0.25)).toBe(60_250);
  });

  it('takes a Retry-After that asks for longer than the backoff, and ignores one that asks for less', () => {
    expect(retryDelay(1, policy, 90_000, nearOne)).toBe(90_000);
    expect(retryDelay(7, policy, 90_000, zero)).toBe(90_000);
    expect(retryDelay(1, policy, 500, zero)).toBe(2_000);
    expect(retryDelay(1, policy, 500, nearOne)).toBe(2_999);
    // between the bare backoff and the backoff plus its jitter: the larger of the two
    expect(retryDelay(1, policy, 2_400, () => 0.5)).toBe(2_500);
    expect(retryDelay(1, policy, 2_600, () => 0.5)).toBe(2_600);
  });

  it('follows a configured policy', () => {
    const quick = { baseDelayMs: 50, maxDelayMs: 400, jitterMs: 20 };
    expect([1, 2, 3, 4, 5].map((attempt) => retryDelay(attempt, quick, 0, zero))).toEqual([50, 100, 200, 400, 400]);
    expect(retryDelay(1, { ...quick, jitterMs: 0 }, 0, nearOne)).toBe(50);
  });
});

describe('Retry-After, read against an injected clock', () => {
  it('reads delta-seconds, fractions included', () => {
    expect(parseRetryAfter('90', NOW)).toBe(90_000);
    expect(parseRetryAfter(' 2 ', NOW)).toBe(2_000);
    expect(parseRetryAfter('0.5', NOW)).toBe(500);
    expect(parseRetryAfter('0', NOW)).toBe(0);
  });

  it('reads an HTTP date as the time from the clock to it', () => {
    const in90s = new Date(NOW + 90_000).toUTCString();
    expect(in90s).toBe('Thu, 26 Nov 2026 12:01:30 GMT');
    expect(parseRetryAfter(in90s, NOW)).toBe(90_000);
    // the same header read a minute later asks for a minute less
    expect(parseRetryAfter(in90s, NOW + 60_000)).toBe(30_000);
    expect(retryDelay(1, policy, parseRetryAfter(in90s, NOW), zero)).toBe(90_000);
  });

  it('reads a date in the past as no wait: the backoff decides', () => {
    const past = new Date(NOW - 3_600_000).toUTCString();
    expect(parseRetryAfter(past, NOW)).toBe(0);
    expect(retryDelay(2, policy, parseRetryAfter(past, NOW), zero)).toBe(4_000);
  });

  it.each(['', 'soon', 'in 5 minutes', '1e3', '5s', 'NaN', 'Tomorrow at noon'])(
    'ignores the unreadable value %j',
    (value) => {
      expect(parseRetryAfter(value, NOW)).toBeUndefined();
    },
  );

  it('ignores an absent header', () => {
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
    expect(parseRetryAfter(null, NOW)).toBeUndefined();
  });
});

describe('the backoff strategy BullMQ calls', () => {
  const strategy = backoffStrategy(policy);

  it("returns the delay the job handler chose (it carries Retry-After and the handler's jitter)", () => {
    expect(strategy(1, 'aftercall', new RetryScheduledError('503', 90_000))).toBe(90_000);
    expect(strategy(6, 'aftercall', new RetryScheduledError('503', 1_234))).toBe(1_234);
  });

  it('computes one from the formula for an error that did not come from the handler', () => {
    for (const attempt of [1, 2, 5, 6, 7]) {
      const delay = strategy(attempt, 'aftercall', new Error('connection lost')) as number;
      const floor = retryDelay(attempt, policy, 0, zero);
      expect(delay).toBeGreaterThanOrEqual(floor);
      expect(delay).toBeLessThan(floor + policy.jitterMs);
    }
  });
});
