/**
 * 200 outcomes generated with fast-check go through the whole contract: the zod schema and
 * the published JSON Schema accept them, the plan follows the catalog's table, and the
 * status lookup finds exactly what the producer said it enqueued.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { conversationOutcomeJsonSchema, parseConversationOutcome, type ConversationOutcome } from '../src/producers/conversation-outcome.js';
import { planOutcome } from '../src/producers/plan.js';
import { createProducer } from '../src/producers/producer.js';
import { conversationStatus } from '../src/status.js';
import { resolveTaskConfigs } from '../src/tasks/catalog.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('property');
const client = redis();
const producer = createProducer({ redisUrl: REDIS_URL, prefix });
const HOUR = 3_600_000;
const now = Date.now();

afterAll(async () => {
  await producer.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const printable = (text: string) => !/[\p{Cc}\p{Cs}]/u.test(text);
const text = (max: number) => fc.string({ unit: 'grapheme', minLength: 1, maxLength: max }).filter(printable);
const iso = (from: number, to: number) => fc.integer({ min: from, max: to }).map((ms) => new Date(ms).toISOString());
const kinds = ['booked', 'rescheduled', 'cancelled', 'resolved', 'callback_requested', 'escalated', 'no_action'] as const;

let counter = 0;
const outcomeArbitrary = fc
  .record(
    {
      conversationId: text(60),
      endedAt: iso(now - 3 * HOUR, now),
      outcome: fc.constantFrom(...kinds),
      customer: fc.record(
        {
          id: text(20),
          name: text(40),
          email: fc.stringMatching(/^[a-z][a-z0-9]{0,15}$/).map((local) => `${local}@example.com`),
          phone: fc.stringMatching(/^\+[1-9]\d{6,13}$/),
          locale: fc.constantFrom('en', 'en-GB', 'de-DE', 'fr'),
        },
        { requiredKeys: ['id'] },
      ),
      booking: fc.record(
        { id: text(30), startsAt: iso(now + HOUR, now + 10 * 24 * HOUR), address: text(80), service: text(30) },
        { requiredKeys: ['id', 'startsAt'] },
      ),
      ticket: fc.record({ id: text(20), status: text(10), resolution: text(200) }, { requiredKeys: ['id'] }),
      callback: fc.record(
        { reason: text(100), priority: fc.constantFrom('low', 'normal', 'high'), notAfter: iso(now - HOUR, now + 48 * HOUR) },
        { requiredKeys: ['reason', 'priority'] },
      ),
      sentiment: fc.constantFrom('positive', 'neutral', 'negative'),
      summary: fc.string({ maxLength: 500 }).filter(printable),
      surveyOptIn: fc.boolean(),
      metadata: fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
    },
    { requiredKeys: ['conversationId', 'endedAt', 'outcome', 'customer'] },
  )
  .map((draft) => {
    counter += 1;
    const outcome = { ...draft, conversationId: `${counter}:${draft.conversationId}` } as Record<string, unknown>;
    // the contract's conditional requirements
    if (['booked', 'rescheduled', 'cancelled'].includes(draft.outcome) && !draft.booking) {
      outcome.booking = { id: `bk-${counter}`, startsAt: new Date(now + 30 * HOUR).toISOString() };
    }
    if (outcome.booking) outcome.booking = { ...(outcome.booking as object), id: `bk-${counter}` }; // one booking per outcome
    if (['callback_requested', 'escalated'].includes(draft.outcome) && !draft.callback) {
      outcome.callback = { reason: 'call back', priority: 'normal' };
    }
    return JSON.parse(JSON.stringify(outcome)) as ConversationOutcome;
  });

/** The catalog's table, written out independently of the task definitions. */
function expectedTypes(o: ConversationOutcome, at: number): string[] {
  const bookingKind = ['booked', 'rescheduled', 'cancelled'].includes(o.outcome);
  const types: string[] = [];
  if (bookingKind && o.customer.email) types.push('send_email');
  types.push('update_crm');
  if ((o.outcome === 'booked' || o.outcome === 'rescheduled') && Date.parse(o.booking!.startsAt) - 2 * HOUR > at) types.push('schedule_reminder');
  if (o.ticket) types.push('update_ticket');
  if (o.outcome === 'callback_requested' || o.outcome === 'escalated') types.push('route_callback');
  if ((o.outcome === 'resolved' || o.outcome === 'booked') && o.surveyOptIn === true) types.push('follow_up_survey');
  return types;
}

describe('200 generated outcomes', () => {
  it('round-trip through schema, JSON Schema, plan, enqueue and status', async () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(conversationOutcomeJsonSchema());
    const configs = resolveTaskConfigs();
    await fc.assert(
      fc.asyncProperty(outcomeArbitrary, async (outcome) => {
        // schema: accepted, and unchanged by a JSON round trip
        const parsed = parseConversationOutcome(JSON.parse(JSON.stringify(outcome)));
        expect(parsed).toEqual(outcome);
        expect(validate(outcome), JSON.stringify(validate.errors)).toBe(true);
        // plan: the catalog's table
        const at = Date.now();
        const plan = planOutcome(parsed, configs, at);
        expect(plan.tasks.map((task) => task.type)).toEqual(expectedTypes(parsed, at));
        // enqueue and status: status names exactly the enqueued tasks, with their times
        const result = await producer.conversationEnded(outcome);
        const status = await conversationStatus(client, prefix, outcome.conversationId);
        expect(status.map((entry) => [entry.type, entry.jobId, entry.idempotencyKey, entry.runAt, entry.expiresAt])).toEqual(
          result.tasks.map((task) => [task.type, task.jobId, task.idempotencyKey, task.runAt, task.expiresAt]),
        );
        for (const [index, entry] of status.entries()) {
          const task = result.tasks[index]!;
          expect(entry.state).toBe(task.expired ? 'dead_lettered' : Date.parse(task.runAt) > Date.now() ? 'scheduled' : 'waiting');
        }
      }),
      { numRuns: 200 },
    );
  });
});
