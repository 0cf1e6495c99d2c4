/**
 * Argument parsing for every `aftercall` command: one UsageError, node:util's parseArgs
 * behind one function, and one parser per kind of value (integer, number, duration, choice,
 * list of choices). Each parser takes the option's name and its text (undefined when the
 * option was not given, so `?? default` supplies the default) and throws a UsageError that
 * names the option and what was expected; the command runner (command.ts) turns it into
 * `aftercall <command>: <message>` and exit code 2.
 *
 * Why util.parseArgs and not commander: the options are few and flat, and what makes a
 * command's arguments good is checking their values (ranges, task types, durations), which
 * commander leaves to us as well. parseArgs is built into Node, adds no dependency to the
 * package, and keeps the help texts and error messages users and tests already rely on;
 * commander would reword both. The little it lacks (subcommand dispatch, generated help)
 * is command.ts and main.ts.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { parseDuration } from '../contract/time.js';

/** Bad command-line arguments: exit code 2, the message names the option. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

export type ParsedArgs<O extends OptionSpecs> = ReturnType<
  typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>
>;

/** util.parseArgs in strict mode; an unknown option or a missing value becomes a UsageError. */
export function parseCommandArgs<O extends OptionSpecs>(
  args: string[],
  options: O,
  allowPositionals: boolean,
): ParsedArgs<O> {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true }) as ParsedArgs<O>;
  } catch (error) {
    if (String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError((error as Error).message);
    }
    throw error;
  }
}

export interface Range {
  min?: number;
  max?: number;
  /** What is expected, in words ("a port", "milliseconds"); default "an integer" or "a number". */
  unit?: string;
}

const expected = (option: string, what: string, text: string) =>
  new UsageError(`--${option}: expected ${what}, got ${JSON.stringify(text)}`);

const span = (unit: string, min: number, max: number) =>
  max === Number.MAX_SAFE_INTEGER ? `${unit} of at least ${min}` : `${unit} from ${min} to ${max}`;

/** A whole number in decimal digits, from `min` (default 0) to `max`. */
export function integer(option: string, text: string | undefined, range: Range = {}): number | undefined {
  if (text === undefined) return undefined;
  const { min = 0, max = Number.MAX_SAFE_INTEGER, unit = 'an integer' } = range;
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) throw expected(option, span(unit, min, max), text);
  return value;
}

/** A decimal number (`0.25`, `3`), from `min` to `max`. */
export function number(option: string, text: string | undefined, range: Range = {}): number | undefined {
  if (text === undefined) return undefined;
  const { min = 0, max = Number.MAX_SAFE_INTEGER, unit = 'a number' } = range;
  const value = /^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) throw expected(option, span(unit, min, max), text);
  return value;
}

/** A share from 0 to 1. */
export const fraction = (option: string, text: string | undefined): number | undefined =>
  number(option, text, { min: 0, max: 1, unit: 'a fraction' });

/** A duration (`250ms`, `15s`, `30m`, `2h`, `1d`, or bare milliseconds), in milliseconds. */
export function duration(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = parseDuration(text);
  if (value === undefined) throw expected(option, 'a duration such as 30m or 2h', text);
  return value;
}

/** One of `allowed`. */
/**
 * A point in time: ISO-8601 with an offset (`2026-12-01T09:00:00Z`), or a duration meaning that
 * long before `now` (`2h`: two hours ago). Epoch ms.
 */
export function pointInTime(option: string, text: string | undefined, now: number): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(text) && Number.isFinite(Date.parse(text))) {
    return Date.parse(text);
  }
  const ago = /^\d/.test(text) && !text.includes('T') ? safeDuration(option, text) : undefined;
  if (ago === undefined) {
    throw new UsageError(
      `--${option}: expected an ISO-8601 time with offset (2026-12-01T09:00:00Z) or a duration ago (30m, 2h, 1d); got ${JSON.stringify(text)}`,
    );
  }
  return now - ago;
}

function safeDuration(option: string, text: string): number | undefined {
  try {
    return duration(option, text);
  } catch {
    return undefined;
  }
}

export function choice<T extends string>(
  option: string,
  text: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (text === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(text)) {
    throw new UsageError(`--${option}: expected one of ${allowed.join(', ')}`);
  }
  return text as T;
}

/** A comma-separated list of some of `allowed` (at least one); `noun` names one of them in the error. */
export function choiceList<T extends string>(
  option: string,
  text: string | undefined,
  allowed: readonly T[],
  noun = 'value',
): T[] | undefined {
  if (text === undefined) return undefined;
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !(allowed as readonly string[]).includes(name));
  if (unknown.length || !names.length) {
    throw new UsageError(
      `--${option}: unknown ${noun} ${unknown.join(', ') || '(none given)'}; expected some of ${allowed.join(', ')}`,
    );
  }
  return names as T[];
}

/** A required option: its value, or a UsageError naming it. */
export function required<T>(option: string, value: T | undefined, what: string): T {
  if (value === undefined) throw new UsageError(`--${option} is required: ${what}`);
  return value;
}
