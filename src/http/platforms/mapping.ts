/**
 * From a platform's finished call to a conversation outcome.
 *
 *   conversationId  `<platform>:<call id>`, so a repeated delivery names the same jobs
 *   endedAt         the platform's end time
 *   customer        id from `customer_id`, else the caller's phone number; name, e-mail
 *                   from the extracted data; phone from the call
 *   outcome         `outcome` from the extracted data, else PLATFORM_DEFAULT_OUTCOME
 *   booking, ticket, callback, surveyOptIn   from the extracted data (names below)
 *   summary, sentiment                        from the platform's own analysis
 *
 * The extracted data's field names default to MAPPED_FIELDS; a mapping file
 * (PLATFORM_MAPPING_FILE, YAML or JSON) renames them per platform:
 *
 *   retell:
 *     outcome: call_outcome
 *     booking_starts_at: appointment_time
 *   vapi:
 *     customer_email: email
 *
 * Mapping never rejects by itself except for what the outcome cannot be built without (a
 * call id, an end time, a customer id or phone); everything else is left to the outcome
 * contract, whose field errors name the outcome path and the platform field it came from.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { SUMMARY_MAX, type OutcomeKind } from '../../contract/conversation-outcome.js';
import { ConfigError, type FieldIssue } from '../../contract/validation-error.js';
import { PLATFORM_NAMES, type PlatformCall, type PlatformName } from './platform.js';

export const MAPPED_FIELDS = [
  'outcome',
  'customer_id',
  'customer_name',
  'customer_email',
  'booking_id',
  'booking_starts_at',
  'booking_address',
  'booking_service',
  'ticket_id',
  'ticket_status',
  'ticket_resolution',
  'callback_reason',
  'callback_priority',
  'callback_not_after',
  'survey_opt_in',
] as const;
export type MappedField = (typeof MAPPED_FIELDS)[number];

export interface PlatformMapping {
  /** Per platform: the name of each field in the platform's extracted data. */
  fields: Record<PlatformName, Record<MappedField, string>>;
  defaultOutcome: OutcomeKind;
}

/** The outcome path each field fills, for field errors. */
const OUTCOME_PATH: Record<MappedField, string> = {
  outcome: 'outcome',
  customer_id: 'customer.id',
  customer_name: 'customer.name',
  customer_email: 'customer.email',
  booking_id: 'booking.id',
  booking_starts_at: 'booking.startsAt',
  booking_address: 'booking.address',
  booking_service: 'booking.service',
  ticket_id: 'ticket.id',
  ticket_status: 'ticket.status',
  ticket_resolution: 'ticket.resolution',
  callback_reason: 'callback.reason',
  callback_priority: 'callback.priority',
  callback_not_after: 'callback.notAfter',
  survey_opt_in: 'surveyOptIn',
};

const defaults = (): Record<MappedField, string> =>
  Object.fromEntries(MAPPED_FIELDS.map((field) => [field, field])) as Record<MappedField, string>;

/** The mapping: defaults, renamed by the file when one is given. Throws ConfigError naming what is wrong. */
export function loadMapping(file: string | undefined, defaultOutcome: OutcomeKind): PlatformMapping {
  const fields = Object.fromEntries(PLATFORM_NAMES.map((name) => [name, defaults()])) as PlatformMapping['fields'];
  if (!file) return { fields, defaultOutcome };
  const fail = (message: string): never => {
    throw new ConfigError([{ path: 'PLATFORM_MAPPING_FILE', message: `${file}: ${message}` }]);
  };
  let document: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    document = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    fail(`cannot read it as ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(error as Error).message})`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    fail(`expected an object with a section per platform (${PLATFORM_NAMES.join(', ')})`);
  }
  for (const [platform, section] of Object.entries(document as Record<string, unknown>)) {
    if (!PLATFORM_NAMES.includes(platform as PlatformName)) {
      fail(`${platform}: expected a platform, one of ${PLATFORM_NAMES.join(', ')}`);
    }
    if (section === null || typeof section !== 'object' || Array.isArray(section)) {
      fail(`${platform}: expected field: name pairs, e.g. outcome: call_outcome`);
    }
    for (const [field, name] of Object.entries(section as Record<string, unknown>)) {
      if (!MAPPED_FIELDS.includes(field as MappedField)) {
        fail(`${platform}.${field}: expected one of ${MAPPED_FIELDS.join(', ')}`);
      }
      if (typeof name !== 'string' || !name.trim()) fail(`${platform}.${field}: expected a field name (a string)`);
      fields[platform as PlatformName][field as MappedField] = (name as string).trim();
    }
  }
  return { fields, defaultOutcome };
}

export type Mapped =
  | { ok: true; conversationId: string; outcome: Record<string, unknown>; describe(issues: FieldIssue[]): FieldIssue[] }
  | { ok: false; conversationId: string | undefined; issues: FieldIssue[] };

const present = (value: unknown) => value !== undefined && value !== null && value !== '';

/** Text from a string (trimmed) or a number; anything else is passed on for the contract to refuse. */
function text(value: unknown): unknown {
  if (typeof value === 'string') return value.trim() || undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return present(value) ? value : undefined;
}

function flag(value: unknown): unknown {
  if (typeof value !== 'string') return present(value) ? value : undefined;
  const lower = value.trim().toLowerCase();
  if (['true', 'yes', '1'].includes(lower)) return true;
  if (['false', 'no', '0'].includes(lower)) return false;
  return lower ? value : undefined;
}

/** `Callback Requested` -> `callback_requested`; the contract then checks it is a known kind. */
function kind(value: unknown): unknown {
  if (typeof value !== 'string') return present(value) ? value : undefined;
  return (
    value
      .trim()
      .toLowerCase()
      .replace(/[\s-]+/g, '_') || undefined
  );
}

/** A date-time as text, or epoch seconds / milliseconds as a number. */
function time(value: unknown): unknown {
  if (typeof value === 'number' && Number.isFinite(value))
    return new Date(value >= 1e12 ? value : value * 1000).toISOString();
  return text(value);
}

const SENTIMENTS: Record<string, string> = { positive: 'positive', neutral: 'neutral', negative: 'negative' };

function compact(object: Record<string, unknown>): Record<string, unknown> | undefined {
  const entries = Object.entries(object).filter(([, value]) => value !== undefined);
  return entries.length ? Object.fromEntries(entries) : undefined;
}

export function mapCall(platform: PlatformName, call: PlatformCall, mapping: PlatformMapping): Mapped {
  const names = mapping.fields[platform];
  const get = (field: MappedField) => call.fields[names[field]];
  const callId = text(call.callId);
  const conversationId = typeof callId === 'string' ? `${platform}:${callId}` : undefined;
  const issues: FieldIssue[] = [];
  if (!conversationId)
    issues.push({ path: 'conversationId', message: `required: expected the call id at ${call.sources.callId}` });
  if (call.endedAt === undefined)
    issues.push({ path: 'endedAt', message: `required: expected the end time at ${call.sources.endedAt}` });
  const phone = text(call.phone);
  const customerId = text(get('customer_id')) ?? phone;
  if (customerId === undefined) {
    issues.push({
      path: 'customer.id',
      message: `required: expected a customer id (${call.sources.fields}.${names.customer_id}) or the phone number (${call.sources.phone})`,
    });
  }
  if (issues.length) return { ok: false, conversationId, issues };

  const booking = compact({
    id: text(get('booking_id')),
    startsAt: time(get('booking_starts_at')),
    address: text(get('booking_address')),
    service: text(get('booking_service')),
  });
  const ticket = compact({
    id: text(get('ticket_id')),
    status: text(get('ticket_status')),
    resolution: text(get('ticket_resolution')),
  });
  const callbackFields = compact({
    reason: text(get('callback_reason')),
    priority: kind(get('callback_priority')),
    notAfter: time(get('callback_not_after')),
  });
  const callback = callbackFields && { priority: 'normal', ...callbackFields };
  const summary =
    typeof call.summary === 'string' && call.summary.trim()
      ? [...call.summary.trim()].slice(0, SUMMARY_MAX).join('')
      : undefined;
  const sentiment = typeof call.sentiment === 'string' ? SENTIMENTS[call.sentiment.toLowerCase()] : undefined;
  const outcome = compact({
    conversationId,
    endedAt: new Date(call.endedAt!).toISOString(),
    outcome: kind(get('outcome')) ?? mapping.defaultOutcome,
    customer: compact({
      id: customerId,
      name: text(get('customer_name')),
      email: text(get('customer_email')),
      phone,
    }),
    booking,
    ticket,
    callback,
    sentiment,
    summary,
    surveyOptIn: flag(get('survey_opt_in')),
  })!;
  const sourceOf = new Map<string, string>(
    MAPPED_FIELDS.map((field) => [OUTCOME_PATH[field], `${call.sources.fields}.${names[field]}`]),
  );
  sourceOf.set('customer.phone', call.sources.phone);
  sourceOf.set('endedAt', call.sources.endedAt);
  sourceOf.set('conversationId', call.sources.callId);
  return {
    ok: true,
    conversationId: conversationId!,
    outcome,
    // The contract's field errors, each with the platform field it came from.
    describe: (contractIssues) =>
      contractIssues.map((issue) => {
        const source = sourceOf.get(issue.path) ?? sourceOf.get(issue.path.split('.')[0]!);
        return source ? { path: issue.path, message: `${issue.message} (from ${source})` } : issue;
      }),
  };
}
