/**
 * The console's dead-letter selectors and actions: the HTTP API's (routes/dead-letters.ts),
 * validated by the same zod schemas (deadLetterQuery, deadLetterAction) and run the same
 * way, so a replay from the console, the API and the CLI select the same entries.
 *
 *   selectors  type, reason, and a time range of dead-lettering (since, until); an action
 *              takes one entry (jobId) or all that match (all), and needs a type
 *   dry run    counts what would be acted on, and for a replay how many have expired;
 *              changes nothing
 *   replay     back to the queue with fresh attempts; `extend` gives every replayed entry a
 *              new expiry that far from now. An expired entry is never replayed without
 *              it (the dead-letter queue refuses; it is listed under failed).
 *   purge      deleted for good
 *
 * Forms send times as typed: ISO-8601 with offset, or a duration ago (`2h`, as the CLI
 * takes), turned into ISO-8601 here before the schema sees them.
 */
import { parseDuration, toIso } from '../../contract/time.js';
import { actOnDeadLetters, type DeadLetterAction, type DeadLetterActionResult } from '../../ops/dead-letter-actions.js';
import { toFieldIssues, type FieldIssue } from '../../contract/validation-error.js';
import type { DeadLetterEntry, DeadLetterQueue, DeadLetterReason } from '../../redis/dead-letter-queue.js';
import type { TaskType } from '../../tasks/catalog.js';
import { deadLetterAction, deadLetterQuery } from '../schemas.js';

export type Action = DeadLetterAction;

export interface Selectors {
  type?: TaskType;
  reason?: DeadLetterReason;
  since?: string;
  until?: string;
}

export interface ActionRequest extends Selectors {
  action: Action;
  type: TaskType;
  jobId?: string;
  all?: boolean;
  extend?: string;
}

export type ActionResult = DeadLetterActionResult;

export type Parsed<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined);

/** `2h` (a duration ago) to ISO-8601; anything else is passed on for the schema to judge. */
function timeField(value: unknown, now: number): string | undefined {
  const given = text(value);
  if (given === undefined) return undefined;
  const ago = /^\d/.test(given) && !given.includes('T') ? parseDuration(given) : undefined;
  return ago === undefined ? given : toIso(now - ago);
}

/** The list's filters, from a query string. */
export function parseSelectors(query: Record<string, unknown>, now: number): Parsed<Selectors> {
  const fields = {
    type: text(query.type),
    reason: text(query.reason),
    since: timeField(query.since, now),
    until: timeField(query.until, now),
  };
  const result = deadLetterQuery.safeParse(Object.fromEntries(Object.entries(fields).filter(([, v]) => v)));
  if (!result.success) return { ok: false, issues: toFieldIssues(result.error.issues) };
  const { type, reason, since, until } = result.data;
  return {
    ok: true,
    value: {
      ...(type && { type: type as TaskType }),
      ...(reason && { reason }),
      ...(since && { since }),
      ...(until && { until }),
    },
  };
}

/** An action, from a posted form. */
export function parseAction(body: Record<string, unknown>, now: number): Parsed<ActionRequest> {
  const action = text(body.action);
  if (action !== 'replay' && action !== 'purge') {
    return { ok: false, issues: [{ path: 'action', message: 'expected replay or purge' }] };
  }
  const jobId = text(body.jobId);
  // One entry is named by its id; the list's filters select entries for a bulk action only.
  const candidate = {
    type: text(body.type),
    ...(jobId
      ? { jobId }
      : { all: true, reason: text(body.reason), since: timeField(body.since, now), until: timeField(body.until, now) }),
    extend: action === 'replay' ? text(body.extend) : undefined,
  };
  const result = deadLetterAction.safeParse(Object.fromEntries(Object.entries(candidate).filter(([, v]) => v)));
  if (!result.success) return { ok: false, issues: toFieldIssues(result.error.issues) };
  const { type, reason, since, until, extend } = result.data;
  return {
    ok: true,
    value: {
      action,
      type: type as TaskType,
      ...(jobId ? { jobId } : { all: true }),
      ...(reason && { reason }),
      ...(since && { since }),
      ...(until && { until }),
      ...(extend && { extend }),
    },
  };
}

/** Entries matching the selectors, newest first (at most `limit`). */
export function listSelected(dlq: DeadLetterQueue, selectors: Selectors, limit: number): Promise<DeadLetterEntry[]> {
  return dlq.list({
    ...(selectors.type && { types: [selectors.type] }),
    ...(selectors.reason && { reason: selectors.reason }),
    ...(selectors.since && { since: Date.parse(selectors.since) }),
    ...(selectors.until && { until: Date.parse(selectors.until) }),
    limit,
  });
}

/** Counts (dry run) or performs an action, as POST /v1/dead-letters/{replay,purge} does (ops/dead-letter-actions.ts). */
export function runAction(
  dlq: DeadLetterQueue,
  request: ActionRequest,
  options: { dryRun: boolean; clock: () => number },
): Promise<ActionResult> {
  return actOnDeadLetters(
    dlq,
    request.action,
    {
      type: request.type,
      ...(request.jobId !== undefined && { jobId: request.jobId }),
      ...(request.reason && { reason: request.reason }),
      ...(request.since && { since: Date.parse(request.since) }),
      ...(request.until && { until: Date.parse(request.until) }),
    },
    {
      dryRun: options.dryRun,
      clock: options.clock,
      ...(request.extend !== undefined && { extendMs: parseDuration(request.extend) }),
    },
  );
}
