/**
 * Synthetic conversation outcomes, for the demo, the reliability suite and the
 * benchmarks: every outcome kind in turn, customers with and without e-mail addresses and
 * phone numbers (so every channel gets traffic), appointments soon enough that reminders
 * are due at once, and optional shares of refused recipients and of conversations that
 * ended too long ago for their e-mail to matter. Deterministic for a given index.
 */
import {
  BOOKING_OUTCOMES,
  CALLBACK_OUTCOMES,
  OUTCOME_KINDS,
  type ConversationOutcome,
} from '../src/contract/conversation-outcome.js';

const HOUR = 3_600_000;

export interface SyntheticOptions {
  /** Identifies the run: conversation and booking ids carry it. */
  runId: string;
  now: number;
  /** Share (0..1) of customers whose e-mail and phone the providers refuse. */
  refusedShare?: number;
  /** Share (0..1) of conversations that ended 45 minutes ago (their e-mail has expired). */
  lateShare?: number;
  /** Appointment time, from now (default 6 h: the reminder is due at once, expires in 4 h). */
  appointmentInMs?: number;
}

/** A spread-out number in 0..999 for an index, so shares do not cluster. */
const spread = (index: number, salt: number) => (index * 7_919 + salt * 104_729) % 1_000;

export const isRefused = (index: number, options: SyntheticOptions) =>
  spread(index, 1) < (options.refusedShare ?? 0) * 1_000;

export function refusedEmail(index: number): string {
  return `refused-${index}@demo.invalid`;
}

export function refusedPhone(index: number): string {
  return `+1555000${String(index % 10_000).padStart(4, '0')}`;
}

export function syntheticOutcome(index: number, options: SyntheticOptions): ConversationOutcome {
  const outcome = OUTCOME_KINDS[index % OUTCOME_KINDS.length]!;
  const refused = isRefused(index, options);
  const late = spread(index, 2) < (options.lateShare ?? 0) * 1_000;
  const hasEmail = index % 4 !== 3;
  const hasPhone = index % 2 === 0;
  return {
    conversationId: `${options.runId}-${index}`,
    endedAt: new Date(options.now - (late ? 45 * 60_000 : 1_000)).toISOString(),
    outcome,
    customer: {
      id: `customer-${index}`,
      name: index % 11 === 0 ? 'Robert <script>alert("x")</script> Tables' : `Customer ${index}`,
      ...(hasEmail && { email: refused ? refusedEmail(index) : `customer${index}@demo.example` }),
      ...(hasPhone && { phone: refused ? refusedPhone(index) : `+1415555${String(index % 10_000).padStart(4, '0')}` }),
      locale: index % 3 === 0 ? 'de-DE' : 'en-GB',
    },
    ...(BOOKING_OUTCOMES.includes(outcome) && {
      booking: {
        id: `${options.runId}-booking-${index}`,
        startsAt: new Date(options.now + (options.appointmentInMs ?? 6 * HOUR)).toISOString(),
        address: '12 Harbour Street',
        service: 'Boiler service',
      },
    }),
    ...(index % 5 === 0 && { ticket: { id: `T-${index}`, status: 'open' } }),
    ...(CALLBACK_OUTCOMES.includes(outcome) && {
      callback: { reason: 'Wants a human', priority: index % 2 ? 'high' : 'normal' },
    }),
    surveyOptIn: index % 2 === 1,
    summary: 'Synthetic conversation.',
  };
}

/** The recipients of the refused customers among the first `count` outcomes. */
export function refusedRecipients(count: number, options: SyntheticOptions): string[] {
  const recipients: string[] = [];
  for (let index = 0; index < count; index += 1) {
    if (isRefused(index, options)) recipients.push(refusedEmail(index), refusedPhone(index));
  }
  return recipients;
}
