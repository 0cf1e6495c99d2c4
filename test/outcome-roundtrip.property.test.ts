/**
 * 200 outcomes generated with fast-check go through the whole contract: the zod schema and
 * the published JSON Schema accept them, the plan follows the catalog's table, and the
 * status lookup finds exactly what the producer said it enqueued.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  conversationOutcomeJsonSchema,
  parseConversationOutcome,
  type ConversationOutcome,
} from '../src/contract/conversation-outcome.js';
import { planOutcome } from '../src/tasks/plan.js';
import { createProducer } from '../src/producer/producer.js';
import { conversationStatus } from '../src/ops/status.js';
import { resolveTaskConfigs } from '../src/tasks/catalog.js';
import { outcomeArbitrary } from './helpers/outcome-arbitrary.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('property');
const client = redis();
const producer = createProducer({ redisUrl: REDIS_URL, prefix });
const HOUR = 3_600_000;

afterAll(async () => {
  await producer.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

/** The catalog's table, written out independently of the task definitions. */
function expectedTypes(o: ConversationOutcome, at: number): string[] {
  const bookingKind = ['booked', 'rescheduled', 'cancelled'].includes(o.outcome);
  const types: string[] = [];
  if (bookingKind && o.customer.email) types.push('send_email');
  types.push('update_crm');
  if ((o.outcome === 'booked' || o.outcome === 'rescheduled') && Date.parse(o.booking!.startsAt) - 2 * HOUR > at)
    types.push('schedule_reminder');
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
      fc.asyncProperty(outcomeArbitrary(Date.now()), async (outcome) => {
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
        expect(
          status.map((entry) => [entry.type, entry.jobId, entry.idempotencyKey, entry.runAt, entry.expiresAt]),
        ).toEqual(result.tasks.map((task) => [task.type, task.jobId, task.idempotencyKey, task.runAt, task.expiresAt]));
        for (const [index, entry] of status.entries()) {
          const task = result.tasks[index]!;
          expect(entry.state).toBe(
            task.expired ? 'dead_lettered' : Date.parse(task.runAt) > Date.now() ? 'scheduled' : 'waiting',
          );
        }
      }),
      { numRuns: 200 },
    );
  });
});
