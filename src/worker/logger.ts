/**
 * Logs: pino, one JSON object per line.
 *
 * Workers write one line per job outcome with conversationId, jobId, type, attempt,
 * durationMs and result (and the error, on failure). Payloads are never logged, and
 * neither are secrets or customer data (e-mail, phone, name, address, summary): the code
 * logs flat, fixed fields only, error texts are scrubbed of addresses and numbers
 * (scrubText), and the redaction below censors such keys should one be logged anyway.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const SENSITIVE_KEYS = [
  'payload',
  'data',
  'outcome',
  'customer',
  'email',
  'phone',
  'name',
  'address',
  'summary',
  'metadata',
  'secret',
  'password',
  'token',
  'apiKey',
  'authToken',
  'authorization',
  'webhookSecret',
];

// Top-level keys only: aftercall's log lines are flat (fixed fields), and wildcard paths
// would make pino walk every logged object (a sixth of a worker's CPU per job). `name` at
// the top level is the logger's own name.
export const REDACT_PATHS = SENSITIVE_KEYS.filter((key) => key !== 'name');

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where lines go; standard output by default, written once per turn of the event loop (TurnBatch). */
  destination?: DestinationStream;
  name?: string;
}

let isoTimeMs = Number.NaN;
let isoTimeField = '';

/**
 * pino's `isoTime` (`,"time":"2026-12-01T13:00:00.000Z"`), formatted once per millisecond:
 * a worker writes a line per job, several within the same millisecond under load, and
 * `toISOString` was a fifth of pino's work per line (0.8 of its 3.7 µs, timed alone).
 */
export function isoTime(): string {
  const now = Date.now();
  if (now !== isoTimeMs) {
    isoTimeMs = now;
    isoTimeField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoTimeField;
}

/** A batch this long (characters) is written at once, without waiting for the end of the turn. */
const BATCH_CHARS = 64 * 1024;

/** Batches with lines not yet written: written out synchronously when the process exits. */
const unwritten = new Set<TurnBatch>();
let exitHook = false;

/**
 * Standard output, one write per turn of the event loop: the lines logged within one turn
 * (a worker finishes many jobs in one turn under load, one Redis reply each) are joined
 * and written together, synchronously, when the turn's I/O callbacks are done
 * (setImmediate). A write(2) per line was the largest cost of a worker's log line (7 µs
 * of its 12 µs per job, in the processing-throughput benchmark's worker). Every line is
 * still written, in order, within the turn that logged it; lines a turn holds when the
 * process exits (process.exit, an uncaught error) are written by the exit hook; only a
 * SIGKILL in the middle of a turn loses that turn's lines.
 */
class TurnBatch implements DestinationStream {
  private pending = '';
  private scheduled = false;
  private readonly writeOut = () => this.flushSync();

  constructor(private readonly target: { write(text: string): unknown; flushSync(): void }) {}

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= BATCH_CHARS) {
      this.flushSync();
    } else if (!this.scheduled) {
      this.scheduled = true;
      unwritten.add(this);
      setImmediate(this.writeOut);
    }
  }

  flushSync(): void {
    this.scheduled = false;
    unwritten.delete(this);
    if (this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    this.target.write(text);
  }

  /** pino's `logger.flush(cb)`. */
  flush(callback?: (error?: Error) => void): void {
    this.flushSync();
    if (callback) process.nextTick(callback);
  }
}

function stdoutByTurn(): DestinationStream {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const batch of unwritten) batch.flushSync();
    });
  }
  return new TurnBatch(pino.destination({ dest: 1, sync: true }));
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'aftercall',
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? stdoutByTurn(),
  );
}

const EMAIL = /[^\s@<>"'(),;:]+@[^\s@<>"'(),;:]+\.[A-Za-z]{2,}/g;
// `+` and digits (E.164 and formatted forms), or a bare run of 9+ digits; not dates.
const PHONE = /\+\d[\d\s().-]{5,}\d|\b\d{9,15}\b/g;

/**
 * Error texts come from providers, and a provider may quote the recipient ("The 'To'
 * number +1555... is not a valid phone number"). Before such a text is logged, anything
 * shaped like an e-mail address or a phone number is replaced.
 */
export function scrubText(text: string): string {
  return text.replace(EMAIL, '[e-mail]').replace(PHONE, '[phone]');
}
