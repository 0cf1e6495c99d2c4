/** Output helpers shared by the CLI commands. */
import type { Writable } from 'node:stream';
import { summarizeHistory, type AttemptRecord } from '../redis/attempt-history.js';

export interface CommandIO {
  stdin: NodeJS.ReadableStream;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

export const processIO = (): CommandIO => ({
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});

/** A plain-text table: a header row, then one row per item; cells are trimmed to `max`. */
export function table(rows: Record<string, unknown>[], columns: string[], max = 60): string {
  const cell = (value: unknown) => {
    const text =
      value === null || value === undefined ? '-' : typeof value === 'string' ? value : JSON.stringify(value);
    const flat = text.replace(/\s+/g, ' ');
    return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  };
  const cells = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, index) => Math.max(column.length, ...cells.map((row) => row[index]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, index) => value.padEnd(widths[index]!))
      .join('  ')
      .trimEnd();
  return [line(columns), ...cells.map(line)].join('\n') + '\n';
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A task's attempts, one line each, oldest first. */
export function attemptsTable(history: readonly AttemptRecord[], indent = '  '): string {
  if (!history.length) return `${indent}no attempts recorded\n`;
  const rows = history.map((entry) => ({ ...entry, durationMs: `${entry.durationMs} ms` }));
  return table(rows, ['attempt', 'startedAt', 'durationMs', 'result', 'destination', 'status', 'error'], 100)
    .split('\n')
    .map((line) => (line ? `${indent}${line}` : line))
    .join('\n');
}

/** A history in a few words for a list's cell (`-` for none). */
export function historySummary(history: readonly AttemptRecord[]): string {
  return summarizeHistory(history) || '-';
}
