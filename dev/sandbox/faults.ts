/**
 * Fault injection: how the sandbox misbehaves on purpose, the way real providers do.
 *
 * Every request to a provider endpoint (the Resend, Twilio and webhook fakes) that passes
 * the protocol checks (authentication, a well-formed body) meets the faults in this order:
 *
 *   1. terminal recipient  the recipient is listed in `terminalRecipients`: the provider's
 *                          own "this will never work" answer (Resend 422, Twilio 400 code
 *                          21211, webhook 422). Deterministic, no chance involved.
 *   2. rate limit          429 with `Retry-After: retryAfterSeconds`;
 *   3. server error        500, 502 or 503, one of the three at random (502 comes as an
 *                          HTML page, the way a gateway answers, not as provider JSON);
 *   4. hang                the request is processed and recorded as usual, but its answer
 *                          is held for `hangMs`: the client times out first and sees a
 *                          failure for a request that actually arrived.
 *
 * Steps 2 to 4 share one roll of the dice, so `rateLimitRate`, `serverErrorRate` and
 * `hangRate` are each the fraction of all such requests that get that fault, and they may
 * not add up to more than 1. Latency (uniform in min..max, plus `tailMs` with probability
 * `tailRate`) is added to every answer of a provider endpoint.
 *
 * Each provider request draws the same four numbers from the seeded generator whatever
 * becomes of it, so the same seed and the same request sequence give the same faults.
 */
import { z } from 'zod';
import { toFieldIssues, ValidationError } from '../../src/contract/validation-error.js';
import type { Random } from './random.js';

export interface LatencyConfig {
  min: number;
  max: number;
  /** Probability of an extra `tailMs` on top. */
  tailRate: number;
  tailMs: number;
}

export interface FaultConfig {
  /** Fraction 0..1 of provider requests answered 429 with Retry-After. */
  rateLimitRate: number;
  /** Value of that Retry-After header, in seconds. */
  retryAfterSeconds: number;
  /** Fraction 0..1 answered 500, 502 or 503. */
  serverErrorRate: number;
  /** Fraction 0..1 processed and recorded, whose answer is held for `hangMs`. */
  hangRate: number;
  hangMs: number;
  /** Milliseconds added to every answer. */
  latencyMs: LatencyConfig;
  /** E-mail addresses or phone numbers that always get a terminal error. */
  terminalRecipients: string[];
}

/** A change to the fault configuration: any subset of fields; `latencyMs` may be partial too. */
export type FaultChange = Partial<Omit<FaultConfig, 'latencyMs'>> & { latencyMs?: Partial<LatencyConfig> };

export const DEFAULT_FAULTS: FaultConfig = {
  rateLimitRate: 0,
  retryAfterSeconds: 1,
  serverErrorRate: 0,
  hangRate: 0,
  hangMs: 30_000,
  latencyMs: { min: 0, max: 0, tailRate: 0, tailMs: 0 },
  terminalRecipients: [],
};

const HOUR_MS = 3_600_000;
const fraction = z
  .number('expected a number')
  .min(0, 'expected a fraction from 0 to 1')
  .max(1, 'expected a fraction from 0 to 1');
const millis = z
  .number('expected a number')
  .int('expected whole milliseconds')
  .min(0, 'expected 0 or more milliseconds')
  .max(HOUR_MS, 'expected at most 3600000 ms (1 hour)');

export const faultChangeSchema = z.strictObject({
  rateLimitRate: fraction.optional(),
  retryAfterSeconds: z
    .number('expected a number')
    .int('expected whole seconds')
    .min(0, 'expected 0 or more seconds')
    .max(86_400, 'expected at most 86400 seconds')
    .optional(),
  serverErrorRate: fraction.optional(),
  hangRate: fraction.optional(),
  hangMs: millis.optional(),
  latencyMs: z
    .strictObject({
      min: millis.optional(),
      max: millis.optional(),
      tailRate: fraction.optional(),
      tailMs: millis.optional(),
    })
    .optional(),
  terminalRecipients: z
    .array(
      z
        .string('expected an e-mail address or phone number')
        .trim()
        .min(1, 'expected a non-empty e-mail address or phone number'),
      'expected a list of e-mail addresses or phone numbers',
    )
    .optional(),
});

/**
 * The configuration after `change`, validated; throws a ValidationError naming each
 * offending field. `current` is not modified.
 */
export function mergeFaults(current: FaultConfig, change: unknown): FaultConfig {
  const parsed = faultChangeSchema.safeParse(change);
  if (!parsed.success) throw new ValidationError('fault configuration', toFieldIssues(parsed.error.issues));
  const { latencyMs, terminalRecipients, ...rest } = parsed.data;
  const merged: FaultConfig = {
    ...current,
    ...withoutUndefined(rest),
    latencyMs: { ...current.latencyMs, ...withoutUndefined(latencyMs ?? {}) },
    terminalRecipients: terminalRecipients ? [...terminalRecipients] : [...current.terminalRecipients],
  };
  const issues = [];
  if (merged.latencyMs.min > merged.latencyMs.max) {
    issues.push({ path: 'latencyMs.max', message: `expected at least latencyMs.min (${merged.latencyMs.min})` });
  }
  const sum = merged.rateLimitRate + merged.serverErrorRate + merged.hangRate;
  if (sum > 1 + 1e-9) {
    issues.push({
      path: 'rateLimitRate + serverErrorRate + hangRate',
      message: `expected at most 1 together (they share one roll), got ${sum}`,
    });
  }
  if (issues.length) throw new ValidationError('fault configuration', issues);
  return merged;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>;
}

export function copyFaults(config: FaultConfig): FaultConfig {
  return { ...config, latencyMs: { ...config.latencyMs }, terminalRecipients: [...config.terminalRecipients] };
}

export type ServerErrorStatus = 500 | 502 | 503;
const SERVER_ERRORS: readonly ServerErrorStatus[] = [500, 502, 503];

/** What chance decided for one provider request. */
export interface FaultPlan {
  fault: 'rate_limit' | 'server_error' | 'hang' | 'none';
  serverErrorStatus: ServerErrorStatus;
  latencyMs: number;
}

export function drawFaultPlan(config: FaultConfig, random: Random): FaultPlan {
  // Always four draws, so one request's fate never shifts the next one's.
  const roll = random.next();
  const pick = random.next();
  const spread = random.next();
  const tail = random.next();
  let fault: FaultPlan['fault'] = 'none';
  if (roll < config.rateLimitRate) fault = 'rate_limit';
  else if (roll < config.rateLimitRate + config.serverErrorRate) fault = 'server_error';
  else if (roll < config.rateLimitRate + config.serverErrorRate + config.hangRate) fault = 'hang';
  const { min, max, tailRate, tailMs } = config.latencyMs;
  const latencyMs = Math.round(min + spread * (max - min)) + (tail < tailRate ? tailMs : 0);
  return { fault, serverErrorStatus: SERVER_ERRORS[Math.floor(pick * SERVER_ERRORS.length)]!, latencyMs };
}

/**
 * The comparable form of a recipient: trimmed and lower-cased, the address inside
 * `Name <address>`, without a channel prefix such as `whatsapp:` or `tel:`.
 */
export function normalizeRecipient(recipient: string): string {
  let text = recipient.trim();
  const bracketed = /<([^>]*)>\s*$/.exec(text);
  if (bracketed) text = bracketed[1]!.trim();
  text = text.replace(/^[a-z]+:(?=\+?\d)/i, '');
  return text.toLowerCase();
}

/** Whether any of the recipients is configured to fail terminally. */
export function isTerminalRecipient(config: FaultConfig, recipients: readonly (string | null | undefined)[]): boolean {
  if (!config.terminalRecipients.length) return false;
  const terminal = new Set(config.terminalRecipients.map(normalizeRecipient));
  return recipients.some((recipient) => typeof recipient === 'string' && terminal.has(normalizeRecipient(recipient)));
}
