/**
 * The log line's time: the worker formats it once per millisecond (logger.ts isoTime), and it
 * must read exactly as pino's own isoTime would.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isoTime } from '../src/worker/logger.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('isoTime', () => {
  it("reads as pino's isoTime in every millisecond, reused or not", () => {
    const now = vi.spyOn(Date, 'now');
    for (const at of [
      Date.UTC(2026, 11, 1, 13, 0, 0, 0),
      Date.UTC(2026, 11, 1, 13, 0, 0, 0),
      Date.UTC(2026, 11, 1, 13, 0, 0, 1),
      0,
      Date.UTC(2030, 0, 1, 0, 0, 0, 999),
    ]) {
      now.mockReturnValue(at);
      expect(isoTime()).toBe(pino.stdTimeFunctions.isoTime());
      expect(isoTime()).toBe(`,"time":"${new Date(at).toISOString()}"`);
    }
  });
});
