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
 *
 * Besides the dice, two things real providers do, per destination (destinations.ts), met
 * before everything above (provider-pipeline.ts):
 *
 *   outage      `outages[destination]`: from `since` until `until` (null: until cleared),
 *               the destination answers 503 to every request;
 *   rate limit  `limits[destination]` (or `limits["*"]`): at most `limit` requests in each
 *               fixed window of `windowMs` (aligned to the epoch); the ones above it get
 *               429 with the provider's own body and `retry-after` / `ratelimit-*` headers
 *               (rate-limits.ts).
 *
 * And one thing a webhook receiver does: `gone` lists `webhook:<type>` destinations that
 * answer `410 Gone` to every request, as an endpoint that was removed for good does.
 *
 * Changes to limits and outages are merged per destination: `{ "limits": { "resend": 3 } }` leaves the
 * other destinations' limits as they were, `null` for a destination removes its limit or
 * ends its outage, and `null` for the whole map clears it. A limit is a number (requests
 * per second) or `{ limit, windowMs }`. An outage starts when the change is made and lasts
 * `durationMs`, until `until` (ISO-8601), or, with neither, until it is cleared.
 */
import { z } from 'zod';
import { type FieldIssue, toFieldIssues, ValidationError } from '../../src/contract/validation-error.js';
import { ANY_DESTINATION, DESTINATION_EXPECTED, isDestinationName } from './destinations.js';
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
  /** Fixed-window limits by destination; `*` applies to every destination without its own. */
  limits: Record<string, RateLimitConfig>;
  /** Destinations that answer 503 to every request, while their outage lasts. */
  outages: Record<string, OutageConfig>;
  /** Webhook destinations (`webhook:<type>`) that answer 410 Gone to every request. */
  gone: string[];
}

export interface RateLimitConfig {
  /** Requests allowed in each window. */
  limit: number;
  /** The window's length; windows start at multiples of it (epoch milliseconds of the sandbox's clock). */
  windowMs: number;
}

export interface OutageConfig {
  /** ISO-8601. */
  since: string;
  /** ISO-8601, or null: until cleared. */
  until: string | null;
}

/** A number of requests per second, `{ limit, windowMs }`, or null to remove the limit. */
export type RateLimitChange = number | { limit: number; windowMs?: number } | null;

/** Start an outage now, for `durationMs` or until `until` (neither: until cleared); null ends it. */
export type OutageChange = { durationMs?: number; until?: string | null } | null;

/** A change to the fault configuration: any subset of fields; `latencyMs` may be partial too, `limits` and `outages` per destination. */
export type FaultChange = Partial<Omit<FaultConfig, 'latencyMs' | 'limits' | 'outages'>> & {
  latencyMs?: Partial<LatencyConfig>;
  limits?: Record<string, RateLimitChange> | null;
  outages?: Record<string, OutageChange> | null;
};

export const DEFAULT_FAULTS: FaultConfig = {
  rateLimitRate: 0,
  retryAfterSeconds: 1,
  serverErrorRate: 0,
  hangRate: 0,
  hangMs: 30_000,
  latencyMs: { min: 0, max: 0, tailRate: 0, tailMs: 0 },
  terminalRecipients: [],
  limits: {},
  outages: {},
  gone: [],
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
  gone: z
    .array(
      z.string('expected a destination name').regex(/^webhook:[A-Za-z0-9_.-]{1,64}$/, 'expected webhook:<type>'),
      'expected a list of webhook destinations (webhook:<type>)',
    )
    .optional(),
  // Checked entry by entry in mergeFaults, so an error names the destination and the field.
  limits: z
    .record(z.string(), z.unknown(), 'expected an object of destination names to limits, or null')
    .nullable()
    .optional(),
  outages: z
    .record(z.string(), z.unknown(), 'expected an object of destination names to outages, or null')
    .nullable()
    .optional(),
});

const DAY_MS = 86_400_000;
const LIMIT_EXPECTED = 'expected requests per second (a whole number from 1 to 1000000), { limit, windowMs }, or null';
const requestCount = (typeMessage: string) =>
  z
    .number(typeMessage)
    .int('expected a whole number of requests')
    .min(1, 'expected at least 1 request (an outage is the way to refuse everything)')
    .max(1_000_000, 'expected at most 1000000 requests');
const limitCount = requestCount(LIMIT_EXPECTED);
const windowMs = z
  .number('expected a number')
  .int('expected whole milliseconds')
  .min(1, 'expected at least 1 ms')
  .max(DAY_MS, 'expected at most 86400000 ms (1 day)');
const limitObject = z.strictObject(
  { limit: requestCount('expected a whole number of requests from 1 to 1000000'), windowMs: windowMs.optional() },
  LIMIT_EXPECTED,
);
const outageObject = z.strictObject(
  {
    durationMs: z
      .number('expected a number')
      .int('expected whole milliseconds')
      .min(1, 'expected at least 1 ms')
      .max(DAY_MS, 'expected at most 86400000 ms (1 day)')
      .optional(),
    until: z.iso
      .datetime({ offset: true, error: 'expected an ISO-8601 date-time with offset, or null' })
      .nullable()
      .optional(),
  },
  'expected { durationMs }, { until }, {} (until cleared) or null (end it)',
);

/** Issues with `path` prefixed by `prefix`. */
const under = (prefix: string, issues: FieldIssue[]): FieldIssue[] =>
  issues.map((issue) => ({ ...issue, path: issue.path === '(root)' ? prefix : `${prefix}.${issue.path}` }));

function destinationIssue(field: string, name: string, allowAny: boolean): FieldIssue | undefined {
  if (isDestinationName(name) || (allowAny && name === ANY_DESTINATION)) return undefined;
  return {
    path: `${field}.${name}`,
    message: `unknown destination: ${DESTINATION_EXPECTED}${allowAny ? ' or *' : ''}`,
  };
}

/**
 * Merges a per-destination change (`limits` or `outages`): a bad destination name or value
 * is reported under its field path and skipped, `null` removes an entry, a `null` change
 * removes them all. `parse` turns one value into an entry, or pushes its issues.
 */
function mergeByDestination<T>(
  field: 'limits' | 'outages',
  current: Record<string, T>,
  change: Record<string, unknown> | null,
  issues: FieldIssue[],
  parse: (name: string, value: unknown) => T | undefined,
): Record<string, T> {
  if (change === null) return {};
  const merged = { ...current };
  for (const [name, value] of Object.entries(change)) {
    const wrongName = destinationIssue(field, name, field === 'limits');
    if (wrongName) {
      issues.push(wrongName);
      continue;
    }
    if (value === null) {
      delete merged[name];
      continue;
    }
    const entry = parse(name, value);
    if (entry !== undefined) merged[name] = entry;
  }
  return merged;
}

function mergeLimits(
  current: Record<string, RateLimitConfig>,
  change: Record<string, unknown> | null,
  issues: FieldIssue[],
): Record<string, RateLimitConfig> {
  return mergeByDestination('limits', current, change, issues, (name, value) => {
    const parsed = typeof value === 'object' ? limitObject.safeParse(value) : limitCount.safeParse(value);
    if (!parsed.success) {
      issues.push(...under(`limits.${name}`, toFieldIssues(parsed.error.issues)));
      return undefined;
    }
    return typeof parsed.data === 'number'
      ? { limit: parsed.data, windowMs: 1_000 }
      : { limit: parsed.data.limit, windowMs: parsed.data.windowMs ?? 1_000 };
  });
}

function mergeOutages(
  current: Record<string, OutageConfig>,
  change: Record<string, unknown> | null,
  now: number,
  issues: FieldIssue[],
): Record<string, OutageConfig> {
  return mergeByDestination('outages', current, change, issues, (name, value) => {
    const parsed = outageObject.safeParse(value);
    if (!parsed.success) {
      issues.push(...under(`outages.${name}`, toFieldIssues(parsed.error.issues)));
      return undefined;
    }
    const { durationMs, until } = parsed.data;
    if (durationMs !== undefined && until !== undefined && until !== null) {
      issues.push({ path: `outages.${name}`, message: 'expected durationMs or until, not both' });
      return undefined;
    }
    const end = durationMs !== undefined ? now + durationMs : until ? Date.parse(until) : null;
    if (end !== null && end <= now) {
      issues.push({ path: `outages.${name}.until`, message: 'expected a time after now' });
      return undefined;
    }
    return { since: new Date(now).toISOString(), until: end === null ? null : new Date(end).toISOString() };
  });
}

/** The outages still in force at `now` (an outage past its `until` is over). */
export function currentOutages(outages: Record<string, OutageConfig>, now: number): Record<string, OutageConfig> {
  return Object.fromEntries(
    Object.entries(outages).filter(([, outage]) => outage.until === null || Date.parse(outage.until) > now),
  );
}

/** The outage `destination` is in at `now`, if any. */
export function outageAt(config: FaultConfig, destination: string, now: number): OutageConfig | undefined {
  const outage = config.outages[destination];
  if (!outage || Date.parse(outage.since) > now) return undefined;
  return outage.until === null || Date.parse(outage.until) > now ? outage : undefined;
}

/** The limit in force for `destination`: its own, or the one for every destination. */
export function limitFor(config: FaultConfig, destination: string): RateLimitConfig | undefined {
  return config.limits[destination] ?? config.limits[ANY_DESTINATION];
}

/**
 * The configuration after `change`, validated; throws a ValidationError naming each
 * offending field. `current` is not modified. `now` starts the outages the change starts
 * and ends those already over.
 */
export function mergeFaults(current: FaultConfig, change: unknown, now: number = Date.now()): FaultConfig {
  const parsed = faultChangeSchema.safeParse(change);
  if (!parsed.success) throw new ValidationError('fault configuration', toFieldIssues(parsed.error.issues));
  const { latencyMs, terminalRecipients, limits, outages, gone, ...rest } = parsed.data;
  const issues: FieldIssue[] = [];
  const merged: FaultConfig = {
    ...current,
    ...withoutUndefined(rest),
    latencyMs: { ...current.latencyMs, ...withoutUndefined(latencyMs ?? {}) },
    terminalRecipients: terminalRecipients ? [...terminalRecipients] : [...current.terminalRecipients],
    gone: gone ? [...new Set(gone)] : [...current.gone],
    limits: limits === undefined ? { ...current.limits } : mergeLimits(current.limits, limits, issues),
    outages: currentOutages(
      outages === undefined ? current.outages : mergeOutages(current.outages, outages, now, issues),
      now,
    ),
  };
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

/** A copy to hand out; outages already over are left out. */
export function copyFaults(config: FaultConfig, now: number = Date.now()): FaultConfig {
  return {
    ...config,
    latencyMs: { ...config.latencyMs },
    terminalRecipients: [...config.terminalRecipients],
    gone: [...config.gone],
    limits: Object.fromEntries(Object.entries(config.limits).map(([name, limit]) => [name, { ...limit }])),
    outages: Object.fromEntries(
      Object.entries(currentOutages(config.outages, now)).map(([name, outage]) => [name, { ...outage }]),
    ),
  };
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
