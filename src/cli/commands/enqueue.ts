/**
 * `aftercall enqueue [--shift-to-now] [FILE|-]`: outcomes from a file or standard input
 * into the fleet.
 *
 * The input is one outcome as JSON (pretty-printed or not), a JSON array of outcomes, or
 * NDJSON (one outcome per line). `--shift-to-now` moves every time in an outcome
 * (endedAt, booking.startsAt, callback.notAfter) by the same amount so that the
 * conversation ends now: handy for examples and recorded fixtures. Each accepted outcome prints its result as one JSON
 * line on stdout; each rejected one prints `line N: ...` with its field errors on stderr.
 * Exit code 1 when any outcome was rejected or could not be enqueued, 0 otherwise.
 */
import { readFile } from 'node:fs/promises';
import { OutcomeValidationError } from '../../contract/validation-error.js';
import { createProducer } from '../../producer/producer.js';
import { defineCommand } from '../command.js';
import { readAll } from '../io.js';

interface Item {
  label: string;
  value?: unknown;
  parseError?: string;
}

export function splitInput(text: string): Item[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  try {
    const whole: unknown = JSON.parse(trimmed);
    if (Array.isArray(whole)) return whole.map((value, index) => ({ label: `item ${index + 1}`, value }));
    return [{ label: 'line 1', value: whole }];
  } catch {
    // not one JSON document: NDJSON
  }
  const items: Item[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (!line.trim()) return;
    try {
      items.push({ label: `line ${index + 1}`, value: JSON.parse(line) });
    } catch (error) {
      items.push({ label: `line ${index + 1}`, parseError: `not valid JSON (${(error as Error).message})` });
    }
  });
  return items;
}

const WINDOW = 32;

/** Moves an outcome's times so that it ends at `now`; leaves anything unreadable alone. */
export function shiftToNow(value: unknown, now: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const outcome = value as Record<string, unknown>;
  const endedAt = typeof outcome.endedAt === 'string' ? Date.parse(outcome.endedAt) : Number.NaN;
  if (Number.isNaN(endedAt)) return value;
  const delta = now - endedAt;
  const shift = (text: unknown) => {
    const ms = typeof text === 'string' ? Date.parse(text) : Number.NaN;
    return Number.isNaN(ms) ? text : new Date(ms + delta).toISOString();
  };
  const shifted: Record<string, unknown> = { ...outcome, endedAt: new Date(now).toISOString() };
  for (const [field, time] of [
    ['booking', 'startsAt'],
    ['callback', 'notAfter'],
  ] as const) {
    const part = outcome[field];
    if (typeof part === 'object' && part !== null && time in part) {
      shifted[field] = { ...part, [time]: shift((part as Record<string, unknown>)[time]) };
    }
  }
  return shifted;
}

export const command = defineCommand({
  name: 'enqueue',
  synopsis: ['aftercall enqueue [--shift-to-now] [FILE|-]'],
  summary: `Enqueue outcomes: one JSON outcome, a JSON array, or NDJSON (default: stdin).
Prints one JSON result per accepted outcome; rejected ones go to stderr with
their line number and field errors; exits 1 if any was rejected.
--shift-to-now moves each outcome's times so that it ends now (for examples).`,
  options: { 'shift-to-now': { type: 'boolean' } },
  positionals: true,
  async run({ values, positionals }, context) {
    const config = context.config();
    const { io } = context;
    const source = positionals[0] ?? '-';
    const text = source === '-' ? await readAll(io.stdin) : await readFile(source, 'utf8');
    const items = splitInput(text);
    if (values['shift-to-now']) {
      const now = Date.now();
      for (const item of items) item.value = shiftToNow(item.value, now);
    }
    if (!items.length) {
      io.stderr.write('aftercall enqueue: no outcome in the input\n');
      return 1;
    }
    const producer = createProducer({
      redis: config.redis,
      waitReplicas: config.waitReplicas,
      prefix: config.prefix,
      tasks: config.tasks,
      dedupeWindowMs: config.dedupeWindowMs,
      timeoutMs: config.producerTimeoutMs,
    });
    let failures = 0;
    try {
      // Up to WINDOW outcomes in flight; results are printed in input order.
      const pending: Promise<string>[] = [];
      const settle = async (item: Item): Promise<string> => {
        if (item.parseError) throw new Error(item.parseError);
        return `${JSON.stringify(await producer.conversationEnded(item.value))}\n`;
      };
      const flush = async (promise: Promise<string>, item: Item) => {
        try {
          io.stdout.write(await promise);
        } catch (error) {
          failures += 1;
          const message =
            error instanceof OutcomeValidationError
              ? `rejected: ${error.issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`
              : (error as Error).message;
          io.stderr.write(`${item.label}: ${message}\n`);
        }
      };
      for (let index = 0; index < items.length; index += 1) {
        pending.push(settle(items[index]!));
        pending[index]!.catch(() => undefined);
        if (index >= WINDOW) await flush(pending[index - WINDOW]!, items[index - WINDOW]!);
      }
      for (let index = Math.max(0, items.length - WINDOW); index < items.length; index += 1) {
        await flush(pending[index]!, items[index]!);
      }
    } finally {
      await producer.close();
    }
    return failures ? 1 : 0;
  },
});
