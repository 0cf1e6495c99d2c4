/**
 * follow_up_survey: a short survey, 2 hours after a resolved or booked call, only when the
 * customer opted in. Expires 48 hours after the call.
 */
import { z } from 'zod';
import { customerSchema, OUTCOME_KINDS } from '../contract/conversation-outcome.js';
import { conversationTaskKey } from './job-id.js';
import { fromIso, HOUR } from '../contract/time.js';
import { composeEmail, composeSms, smsGreeting } from './message.js';
import { defineTask, deliverPayload } from './task-definition.js';

const payloadSchema = z.strictObject({ customer: customerSchema, outcome: z.enum(OUTCOME_KINDS) });

export const followUpSurvey = defineTask({
  type: 'follow_up_survey',
  description: 'Follow-up survey for customers who opted in',
  webhookUrlVariable: 'SURVEYS_WEBHOOK_URL',
  defaults: { attempts: 3, settings: { delay: 2 * HOUR, expiresAfter: 48 * HOUR } },
  settingDescriptions: {
    delay: 'runs this long after the conversation ended',
    expiresAfter: 'expires this long after the conversation ended',
  },
  payloadSchema,
  appliesTo: (outcome) =>
    (outcome.outcome === 'resolved' || outcome.outcome === 'booked') && outcome.surveyOptIn === true,
  idempotencyKey: (outcome) => conversationTaskKey(outcome.conversationId, 'follow_up_survey'),
  buildPayload: (outcome) => ({ customer: outcome.customer, outcome: outcome.outcome }),
  runAt: (outcome, settings, now) => Math.max(now, fromIso(outcome.endedAt) + settings.delay),
  expiresAt: (outcome, settings) => fromIso(outcome.endedAt) + settings.expiresAfter,
  messages: {
    email: ({ customer }) =>
      customer.email
        ? composeEmail(customer.email, 'How did we do?', customer.name, [
            'Thank you for calling us. How did we do? Reply to this e-mail with a number from 1 (poor) to 5 (great).',
          ])
        : undefined,
    sms: ({ customer }) =>
      customer.phone
        ? composeSms(
            customer.phone,
            `${smsGreeting(customer.name)}thank you for calling. How did we do? Reply with a number from 1 (poor) to 5 (great).`,
          )
        : undefined,
  },
  process: deliverPayload,
});
