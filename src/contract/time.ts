/**
 * Time in aftercall: ISO-8601 with an offset at the edges (outcomes, results, CLI output),
 * epoch milliseconds everywhere inside (job data, Redis scores, arithmetic).
 *
 * A `Clock` is injected wherever a test needs to move time; production code uses
 * `systemClock`.
 */

export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

const UNITS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/**
 * Parses a duration such as `250ms`, `15s`, `30m`, `2h`, `1d`, or a bare number of
 * milliseconds. Returns undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]) * UNITS[match[2] ?? 'ms']!;
  return Number.isFinite(value) ? Math.round(value) : undefined;
}

/** Formats milliseconds as the shortest exact duration text (`90000` -> `90s`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', DAY],
    ['h', HOUR],
    ['m', MINUTE],
    ['s', SECOND],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Epoch milliseconds to ISO-8601 in UTC (`Z` is the offset). */
export function toIso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A time read back from Redis or job data: ISO-8601 when it is a finite number, else null. */
export function isoOrNull(value: unknown): string | null {
  return typeof value === 'number' && Number.isFinite(value) ? toIso(value) : null;
}

/** ISO-8601 date-time with offset to epoch milliseconds. */
export function fromIso(text: string): number {
  return Date.parse(text);
}
