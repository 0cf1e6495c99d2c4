/** Valid conversation outcomes generated with fast-check, around a given moment. */
import fc from 'fast-check';
import type { ConversationOutcome } from '../../src/contract/conversation-outcome.js';

const HOUR = 3_600_000;
const printable = (text: string) => !/[\p{Cc}\p{Cs}]/u.test(text);
const text = (max: number) => fc.string({ unit: 'grapheme', minLength: 1, maxLength: max }).filter(printable);
const iso = (from: number, to: number) => fc.integer({ min: from, max: to }).map((ms) => new Date(ms).toISOString());
const kinds = [
  'booked',
  'rescheduled',
  'cancelled',
  'resolved',
  'callback_requested',
  'escalated',
  'no_action',
] as const;

let counter = 0;

/** Every outcome gets a conversation id and a booking id of its own. */
export const outcomeArbitrary = (now: number) =>
  fc
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
          {
            reason: text(100),
            priority: fc.constantFrom('low', 'normal', 'high'),
            notAfter: iso(now - HOUR, now + 48 * HOUR),
          },
          { requiredKeys: ['reason', 'priority'] },
        ),
        sentiment: fc.constantFrom('positive', 'neutral', 'negative'),
        summary: fc.string({ maxLength: 500 }).filter(printable),
        surveyOptIn: fc.boolean(),
        // Any key but __proto__, which the schema refuses (test/outcome-schema.test.ts).
        metadata: fc.dictionary(
          fc.string({ maxLength: 10 }).filter((key) => key !== '__proto__'),
          fc.jsonValue({ maxDepth: 2 }),
          { maxKeys: 5 },
        ),
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
