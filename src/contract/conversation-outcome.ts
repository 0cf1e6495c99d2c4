/**
 * The conversation outcome: the public contract between a voice agent and aftercall.
 *
 * A voice agent calls `conversationEnded(outcome)` once a call is over. The outcome says
 * how the conversation ended and carries what the follow-up work needs: who the customer
 * is, the booking that was made or changed, the ticket, the callback that was asked for.
 *
 * This zod schema is the single definition. `schema/conversation-outcome.schema.json`
 * is generated from it (`npm run schema`) for producers in other languages, and a test
 * fails when the committed file is stale. Unknown fields are rejected at every level, so
 * a typo (`customer.emial`) is an error rather than a silently missing e-mail.
 */
import { z } from 'zod';
import { OutcomeValidationError, toFieldIssues } from './validation-error.js';

export const OUTCOME_KINDS = [
  'booked',
  'rescheduled',
  'cancelled',
  'resolved',
  'callback_requested',
  'escalated',
  'no_action',
] as const;
export type OutcomeKind = (typeof OUTCOME_KINDS)[number];

/** Outcomes that must carry `booking`, and outcomes that must carry `callback`. */
export const BOOKING_OUTCOMES: readonly OutcomeKind[] = ['booked', 'rescheduled', 'cancelled'];
export const CALLBACK_OUTCOMES: readonly OutcomeKind[] = ['callback_requested', 'escalated'];

export const SENTIMENTS = ['positive', 'neutral', 'negative'] as const;

export const CONVERSATION_ID_MAX = 200;
export const SUMMARY_MAX = 4_000;
export const METADATA_MAX_BYTES = 8 * 1024;

const CONTROL_CHARACTERS = /[\p{Cc}\p{Cs}]/u;
/** A phone number in E.164 form: `+`, a country code and at most 15 digits in all. */
export const E164 = /^\+[1-9]\d{1,14}$/;
const LOCALE = /^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$/;

// A string's length in UTF-16 units is at least its length in code points, so most
// strings pass without being spread into code points.
const withinCodePoints = (text: string, max: number) => text.length <= max || [...text].length <= max;

/** Printable text of 1..max characters (Unicode code points), no control characters. */
function text(max: number, what: string) {
  return z
    .string({ error: `expected ${what} (a string)` })
    .refine((value) => value.length > 0, { error: `expected ${what}: at least 1 character` })
    .refine((value) => withinCodePoints(value, max), { error: `expected ${what}: at most ${max} characters` })
    .refine((value) => !CONTROL_CHARACTERS.test(value), {
      error: `expected ${what}: printable characters only (no control characters)`,
    })
    .meta({ minLength: 1, maxLength: max });
}

const dateTime = (what: string) =>
  z.iso.datetime({
    offset: true,
    error: `expected ${what} as an ISO-8601 date-time with offset, e.g. 2026-11-26T14:30:00+01:00`,
  });

export const customerSchema = z.strictObject(
  {
    id: text(200, 'a customer id'),
    name: text(200, 'a customer name').optional(),
    email: z.email({ error: 'expected an e-mail address, e.g. ada@example.com' }).max(254).optional(),
    phone: z
      .string({ error: 'expected a phone number in E.164 form, e.g. +14155550100' })
      .regex(E164, { error: 'expected a phone number in E.164 form, e.g. +14155550100' })
      .optional(),
    locale: z
      .string({ error: 'expected a BCP 47 locale, e.g. en-US' })
      .regex(LOCALE, { error: 'expected a BCP 47 locale, e.g. en-US' })
      .optional(),
  },
  { error: 'expected an object' },
);

export const bookingSchema = z.strictObject(
  {
    id: text(200, 'a booking id'),
    startsAt: dateTime('the appointment start'),
    address: text(500, 'an address').optional(),
    service: text(200, 'a service name').optional(),
  },
  { error: 'expected an object' },
);

export const ticketSchema = z.strictObject(
  {
    id: text(200, 'a ticket id'),
    status: text(100, 'a ticket status').optional(),
    resolution: text(SUMMARY_MAX, 'a resolution').optional(),
  },
  { error: 'expected an object' },
);

export const callbackSchema = z.strictObject(
  {
    reason: text(1_000, 'a callback reason'),
    priority: z.enum(['low', 'normal', 'high'], { error: 'expected one of low, normal, high' }),
    notAfter: dateTime('the latest callback time').optional(),
  },
  { error: 'expected an object' },
);

/**
 * Where `value` stops being JSON (the path of the first value that is not a string, a
 * finite number, a boolean, null, an array or a plain object), or undefined when it is
 * JSON throughout. Nesting deeper than JSON_MAX_DEPTH (a cycle, for one) counts as not JSON.
 * A loop rather than a recursive schema (`z.json()`), so the whole outcome schema has no
 * reference cycle and compiles (see `z.compile` below).
 */
const JSON_MAX_DEPTH = 64;
function notJsonAt(value: unknown, path: (string | number)[] = [], depth = 0): (string | number)[] | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (typeof value !== 'object' || depth >= JSON_MAX_DEPTH) return path;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) {
      const found = notJsonAt(value[index], [...path, index], depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return path;
  for (const key of Object.keys(value)) {
    const found = notJsonAt((value as Record<string, unknown>)[key], [...path, key], depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * A metadata key named `__proto__` is refused, naming it: a JavaScript object cannot keep it as
 * a field (assigning it sets the object's prototype), so the record below would drop it silently
 * and the agent's value would be lost. Checked on the input, before the record is built.
 */
const refuseProtoKey = (input: unknown, ctx: { issues: z.core.$ZodRawIssue[] }) => {
  if (input !== null && typeof input === 'object' && Object.hasOwn(input, '__proto__')) {
    ctx.issues.push({
      code: 'custom',
      path: ['__proto__'],
      message: 'expected another key: __proto__ cannot be kept (JavaScript objects treat it as their prototype)',
      input,
    });
  }
  return input;
};

const metadataRecord = z.record(z.string(), z.unknown(), { error: 'expected a JSON object' }).check((ctx) => {
  const at = notJsonAt(ctx.value);
  if (at) {
    ctx.issues.push({ code: 'custom', path: at, message: 'expected a JSON value', input: ctx.value });
  } else if (Buffer.byteLength(JSON.stringify(ctx.value), 'utf8') > METADATA_MAX_BYTES) {
    ctx.issues.push({
      code: 'custom',
      message: `expected a JSON object of at most ${METADATA_MAX_BYTES} bytes when serialised`,
      input: ctx.value,
    });
  }
});
const metadataSchema = z.preprocess(refuseProtoKey, metadataRecord);

export const conversationOutcomeSchema = z
  .strictObject(
    {
      conversationId: text(CONVERSATION_ID_MAX, 'a conversation id'),
      endedAt: dateTime('the end of the conversation'),
      outcome: z.enum(OUTCOME_KINDS, { error: `expected one of ${OUTCOME_KINDS.join(', ')}` }),
      customer: customerSchema,
      booking: bookingSchema.optional(),
      ticket: ticketSchema.optional(),
      callback: callbackSchema.optional(),
      sentiment: z.enum(SENTIMENTS, { error: `expected one of ${SENTIMENTS.join(', ')}` }).optional(),
      summary: z
        .string({ error: 'expected a summary (a string)' })
        .refine((value) => withinCodePoints(value, SUMMARY_MAX), {
          error: `expected a summary of at most ${SUMMARY_MAX} characters`,
        })
        .meta({ maxLength: SUMMARY_MAX })
        .optional(),
      surveyOptIn: z.boolean({ error: 'expected true or false' }).optional(),
      metadata: metadataSchema.optional(),
    },
    { error: 'expected a conversation outcome object' },
  )
  .superRefine((outcome, ctx) => {
    if (BOOKING_OUTCOMES.includes(outcome.outcome) && !outcome.booking) {
      ctx.addIssue({
        code: 'custom',
        path: ['booking'],
        message: `expected a booking: required when outcome is ${outcome.outcome}`,
      });
    }
    if (CALLBACK_OUTCOMES.includes(outcome.outcome) && !outcome.callback) {
      ctx.addIssue({
        code: 'custom',
        path: ['callback'],
        message: `expected a callback: required when outcome is ${outcome.outcome}`,
      });
    }
  });

/**
 * The same schema, compiled by zod into one generated function: valid outcomes (nearly
 * all of them) take that fast path; anything it rejects is parsed again by the schema
 * above, which reports the issues. A test checks that both accept and reject alike.
 */
export const compiledOutcomeSchema = z.compile(conversationOutcomeSchema);

export type ConversationOutcome = z.infer<typeof conversationOutcomeSchema>;
export type Customer = z.infer<typeof customerSchema>;
export type Booking = z.infer<typeof bookingSchema>;
export type Ticket = z.infer<typeof ticketSchema>;
export type Callback = z.infer<typeof callbackSchema>;

/**
 * The JSON Schema of the outcome, generated from the zod schema. The conditional
 * requirements (booking, callback) are added as `if`/`then` clauses, since zod's
 * refinements have no JSON Schema form.
 */
export function conversationOutcomeJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(conversationOutcomeSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  const requireWhen = (outcomes: readonly OutcomeKind[], field: string) => ({
    if: { properties: { outcome: { enum: [...outcomes] } }, required: ['outcome'] },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword, not a thenable
    then: { required: [field] },
  });
  // metadata's values are checked by a function (notJsonAt), which has no JSON Schema form.
  const properties = generated.properties as Record<string, Record<string, unknown>>;
  properties.metadata = {
    ...properties.metadata,
    propertyNames: { type: 'string', not: { const: '__proto__' } },
    additionalProperties: { $ref: '#/$defs/jsonValue' },
  };
  const jsonValue = {
    anyOf: [
      { type: 'string' },
      { type: 'number' },
      { type: 'boolean' },
      { type: 'null' },
      { type: 'array', items: { $ref: '#/$defs/jsonValue' } },
      { type: 'object', additionalProperties: { $ref: '#/$defs/jsonValue' } },
    ],
  };
  return {
    $schema: generated.$schema,
    $id: 'https://aftercall.dev/schema/conversation-outcome.schema.json',
    title: 'Conversation outcome',
    description:
      'What a voice agent hands to aftercall when a conversation ends. Unknown fields are rejected. ' +
      `metadata must serialise to at most ${METADATA_MAX_BYTES} bytes; string lengths count Unicode code points.`,
    ...Object.fromEntries(Object.entries(generated).filter(([key]) => key !== '$schema')),
    allOf: [requireWhen(BOOKING_OUTCOMES, 'booking'), requireWhen(CALLBACK_OUTCOMES, 'callback')],
    $defs: { ...(generated.$defs as Record<string, unknown> | undefined), jsonValue },
  };
}

/**
 * Validates an outcome. Throws `OutcomeValidationError` listing every offending field;
 * never throws anything else, whatever the input (hostile getters and cycles included).
 */
export function parseConversationOutcome(input: unknown): ConversationOutcome {
  let result: ReturnType<typeof conversationOutcomeSchema.safeParse>;
  try {
    result = compiledOutcomeSchema.safeParse(input, { reportInput: true });
  } catch {
    throw new OutcomeValidationError([{ path: '(root)', message: 'expected a plain JSON object' }]);
  }
  if (!result.success) throw new OutcomeValidationError(toFieldIssues(result.error.issues));
  return result.data;
}
