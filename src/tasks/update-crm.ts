/**
 * update_crm: the conversation's record in the CRM, for every outcome. Carries the whole
 * outcome, `metadata` included as the voice agent sent it. Expires 4 hours after the call.
 */
import { conversationOutcomeSchema } from '../contract/conversation-outcome.js';
import { conversationTaskKey } from './job-id.js';
import { fromIso, HOUR } from '../contract/time.js';
import { defineTask, deliverPayload } from './task-definition.js';

export const updateCrm = defineTask({
  type: 'update_crm',
  description: 'The conversation record in the CRM',
  webhookUrlVariable: 'CRM_WEBHOOK_URL',
  defaults: { attempts: 5, settings: { expiresAfter: 4 * HOUR } },
  settingDescriptions: { expiresAfter: 'expires this long after the conversation ended' },
  payloadSchema: conversationOutcomeSchema,
  appliesTo: () => true,
  idempotencyKey: (outcome) => conversationTaskKey(outcome.conversationId, 'update_crm'),
  buildPayload: (outcome) => outcome,
  runAt: (_outcome, _settings, now) => now,
  expiresAt: (outcome, settings) => fromIso(outcome.endedAt) + settings.expiresAfter,
  process: deliverPayload,
});
