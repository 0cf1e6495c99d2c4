/**
 * route_callback: a human calls the customer back, for callback_requested and escalated.
 * Expires at the customer's `callback.notAfter`, or 1 hour after the call.
 */
import { z } from 'zod';
import {
  CALLBACK_OUTCOMES,
  callbackSchema,
  customerSchema,
  OUTCOME_KINDS,
  SENTIMENTS,
} from '../contract/conversation-outcome.js';
import { conversationTaskKey } from './job-id.js';
import { fromIso, HOUR } from '../contract/time.js';
import { defineTask, deliverPayload } from './task-definition.js';

const payloadSchema = z.strictObject({
  callback: callbackSchema,
  outcome: z.enum(OUTCOME_KINDS),
  customer: customerSchema,
  summary: z.string().optional(),
  sentiment: z.enum(SENTIMENTS).optional(),
});

export const routeCallback = defineTask({
  type: 'route_callback',
  description: 'A callback by a human, routed to the callback queue',
  webhookUrlVariable: 'CALLBACKS_WEBHOOK_URL',
  defaults: { attempts: 5, settings: { expiresAfter: 1 * HOUR } },
  settingDescriptions: {
    expiresAfter: 'expires this long after the conversation ended, unless callback.notAfter says',
  },
  payloadSchema,
  appliesTo: (outcome) => CALLBACK_OUTCOMES.includes(outcome.outcome) && !!outcome.callback,
  idempotencyKey: (outcome) => conversationTaskKey(outcome.conversationId, 'route_callback'),
  buildPayload: (outcome) => ({
    callback: outcome.callback!,
    outcome: outcome.outcome,
    customer: outcome.customer,
    ...(outcome.summary !== undefined && { summary: outcome.summary }),
    ...(outcome.sentiment !== undefined && { sentiment: outcome.sentiment }),
  }),
  runAt: (_outcome, _settings, now) => now,
  expiresAt: (outcome, settings) =>
    outcome.callback?.notAfter ? fromIso(outcome.callback.notAfter) : fromIso(outcome.endedAt) + settings.expiresAfter,
  process: deliverPayload,
});
