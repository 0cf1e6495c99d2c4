/**
 * Outcome -> plan: which tasks a conversation outcome creates, under which keys, when each
 * runs and when it expires. Pure: no Redis, no clock of its own (`now` is given), so the
 * same outcome always gives the same plan at the same moment.
 *
 * - A task type that is switched off is listed under `skipped` with reason `disabled`.
 * - A task that would already be expired is planned anyway and marked `expired`: the
 *   producer puts it straight into the dead-letter queue with reason `expired`, so it is
 *   never dropped silently. Types that opt out (`skipWhenExpired`, the reminder) are
 *   listed under `skipped` with reason `expired` instead.
 * - A scoped task (a booking's reminder) also carries what the outcome does to its scope:
 *   replace the pending reminder, or cancel it.
 */
import type { ConversationOutcome } from '../contract/conversation-outcome.js';
import { allTaskDefinitions, type AnyTaskDefinition, type TaskConfigs, type TaskType } from './catalog.js';
import { jobIdFor } from './job-id.js';
import type { TaskJobData } from './job-data.js';
import { fromIso } from '../contract/time.js';

export type SkipReason = 'disabled' | 'expired' | 'superseded';

export interface ScopeChange {
  id: string;
  action: 'replace' | 'cancel';
  /** endedAt of the outcome: a scope only moves forward, never back to an older outcome. */
  version: number;
}

export interface PlannedTask {
  definition: AnyTaskDefinition;
  type: TaskType;
  idempotencyKey: string;
  jobId: string;
  runAt: number;
  expiresAt: number;
  attempts: number;
  /** Already past its expiry when planned: goes straight to the dead-letter queue. */
  expired: boolean;
  data: TaskJobData;
  scope?: ScopeChange;
}

/** A scope change that creates no task: a cancellation, or a replacement whose new task was skipped. */
export interface ScopeOnlyChange {
  definition: AnyTaskDefinition;
  type: TaskType;
  scope: ScopeChange;
}

export interface Plan {
  conversationId: string;
  endedAt: number;
  tasks: PlannedTask[];
  skipped: { type: TaskType; reason: SkipReason }[];
  scopeChanges: ScopeOnlyChange[];
}

export function planOutcome(outcome: ConversationOutcome, configs: TaskConfigs, now: number): Plan {
  const endedAt = fromIso(outcome.endedAt);
  const plan: Plan = { conversationId: outcome.conversationId, endedAt, tasks: [], skipped: [], scopeChanges: [] };

  for (const definition of allTaskDefinitions()) {
    const config = configs.get(definition.type)!;
    const scopeId = definition.scope?.id(outcome);
    const scopeAction = definition.scope?.action(outcome);
    const scope: ScopeChange | undefined =
      scopeId !== undefined && scopeAction !== undefined
        ? { id: scopeId, action: scopeAction, version: endedAt }
        : undefined;

    if (!definition.appliesTo(outcome)) {
      if (scope && config.enabled) plan.scopeChanges.push({ definition, type: definition.type, scope });
      continue;
    }
    if (!config.enabled) {
      plan.skipped.push({ type: definition.type, reason: 'disabled' });
      continue;
    }
    const expiresAt = definition.expiresAt(outcome, config.settings);
    const expired = expiresAt <= now;
    if (expired && definition.skipWhenExpired) {
      plan.skipped.push({ type: definition.type, reason: 'expired' });
      if (scope) plan.scopeChanges.push({ definition, type: definition.type, scope });
      continue;
    }
    const idempotencyKey = definition.idempotencyKey(outcome);
    const runAt = expired ? now : definition.runAt(outcome, config.settings, now);
    plan.tasks.push({
      definition,
      type: definition.type,
      idempotencyKey,
      jobId: jobIdFor(idempotencyKey),
      runAt,
      expiresAt,
      attempts: config.attempts,
      expired,
      data: {
        type: definition.type,
        conversationId: outcome.conversationId,
        idempotencyKey,
        createdAt: now,
        runAt,
        expiresAt,
        ...(scope && { scopeId: scope.id }),
        payload: definition.buildPayload(outcome),
      },
      ...(scope && { scope }),
    });
  }
  return plan;
}
