/**
 * update_ticket: the support ticket the conversation was about gets the outcome, for
 * every outcome that names a ticket. Expires 24 hours after the call.
 */
import { z } from 'zod';
import { OUTCOME_KINDS, ticketSchema } from '../contract/conversation-outcome.js';
import { conversationTaskKey } from './job-id.js';
import { fromIso, HOUR } from '../contract/time.js';
import { defineTask, deliverPayload } from './task-definition.js';

const payloadSchema = z.strictObject({
  ticket: ticketSchema,
  outcome: z.enum(OUTCOME_KINDS),
  customerId: z.string(),
  endedAt: z.string(),
  summary: z.string().optional(),
});

export const updateTicket = defineTask({
  type: 'update_ticket',
  description: 'The support ticket gets the outcome',
  webhookUrlVariable: 'TICKETS_WEBHOOK_URL',
  defaults: { attempts: 5, settings: { expiresAfter: 24 * HOUR } },
  settingDescriptions: { expiresAfter: 'expires this long after the conversation ended' },
  payloadSchema,
  appliesTo: (outcome) => !!outcome.ticket,
  idempotencyKey: (outcome) => conversationTaskKey(outcome.conversationId, 'update_ticket'),
  buildPayload: (outcome) => ({
    ticket: outcome.ticket!,
    outcome: outcome.outcome,
    customerId: outcome.customer.id,
    endedAt: outcome.endedAt,
    ...(outcome.summary !== undefined && { summary: outcome.summary }),
  }),
  runAt: (_outcome, _settings, now) => now,
  expiresAt: (outcome, settings) => fromIso(outcome.endedAt) + settings.expiresAfter,
  process: deliverPayload,
});
