/** Outcomes for tests, relative to a given moment. */
import { createHash } from 'node:crypto';
import type { ConversationOutcome } from '../../src/contract/conversation-outcome.js';

/** A short booking id per conversation. */
export const bookingIdFor = (conversationId: string) =>
  `bk-${createHash('sha1').update(conversationId).digest('hex').slice(0, 12)}`;

const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;

export function bookedOutcome(
  conversationId: string,
  now = Date.now(),
  extra: Partial<ConversationOutcome> = {},
): ConversationOutcome {
  return {
    conversationId,
    endedAt: iso(now - 1_000),
    outcome: 'booked',
    customer: { id: 'cust-1', name: 'Ada Lovelace', email: 'ada@example.com', phone: '+14155550100', locale: 'en-GB' },
    booking: {
      id: bookingIdFor(conversationId),
      startsAt: iso(now + 72 * HOUR),
      address: '1 Main St',
      service: 'Dental check-up',
    },
    surveyOptIn: true,
    summary: 'Booked a check-up.',
    ...extra,
  };
}

export function resolvedOutcome(
  conversationId: string,
  now = Date.now(),
  extra: Partial<ConversationOutcome> = {},
): ConversationOutcome {
  return {
    conversationId,
    endedAt: iso(now - 1_000),
    outcome: 'resolved',
    customer: { id: 'cust-2', email: 'grace@example.com' },
    ticket: { id: 'T-1', status: 'solved' },
    ...extra,
  };
}
