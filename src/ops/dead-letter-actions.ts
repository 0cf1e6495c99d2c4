/**
 * Replay and purge of dead letters, by the selectors the CLI (`dlq replay|purge`), the
 * HTTP API (POST /v1/dead-letters/{replay,purge}) and the web console all take, so the three
 * select and act on the same entries:
 *
 *   selection  a task type, and one entry (jobId) or every entry matching a reason and a
 *              time range of dead-lettering (since, until: epoch ms)
 *   dry run    counts what would be acted on and, for a replay, how many have expired;
 *              changes nothing
 *   replay     back to the queue with fresh attempts; `extendMs` gives every replayed entry
 *              a new expiry that far from now. An expired entry is never replayed without
 *              it: the dead-letter queue refuses, and the entry is listed under `failed`.
 *   purge      deleted for good
 */
import type { DeadLetterEntry, DeadLetterQueue, DeadLetterReason } from '../redis/dead-letter-queue.js';
import type { TaskType } from '../tasks/catalog.js';

export type DeadLetterAction = 'replay' | 'purge';

export interface DeadLetterSelection {
  type: TaskType;
  /** One entry; without it, every entry of the type matching the rest. */
  jobId?: string;
  reason?: DeadLetterReason;
  /** Dead-lettered at or after (epoch ms). */
  since?: number;
  /** Dead-lettered before (epoch ms). */
  until?: number;
}

export interface DeadLetterActionResult {
  action: DeadLetterAction;
  dryRun: boolean;
  /** Entries selected. */
  matched: number;
  /** Entries replayed or purged (0 in a dry run). */
  done: number;
  /** Replay only: selected entries whose expiry has passed (they need `extendMs`). */
  expired: number;
  failed: { jobId: string; error: string }[];
}

/** The entries a selection picks, newest first. */
export async function selectDeadLetters(
  dlq: DeadLetterQueue,
  selection: DeadLetterSelection,
): Promise<DeadLetterEntry[]> {
  if (selection.jobId !== undefined) {
    const entry = await dlq.get(selection.type, selection.jobId);
    return entry ? [entry] : [];
  }
  return dlq.list({
    types: [selection.type],
    ...(selection.reason && { reason: selection.reason }),
    ...(selection.since !== undefined && { since: selection.since }),
    ...(selection.until !== undefined && { until: selection.until }),
    limit: Number.MAX_SAFE_INTEGER,
  });
}

/** Counts (dry run) or performs a replay or purge of the selected entries, one at a time. */
export async function actOnDeadLetters(
  dlq: DeadLetterQueue,
  action: DeadLetterAction,
  selection: DeadLetterSelection,
  options: { dryRun: boolean; extendMs?: number; clock: () => number },
): Promise<DeadLetterActionResult> {
  const chosen = await selectDeadLetters(dlq, selection);
  const now = options.clock();
  const result: DeadLetterActionResult = {
    action,
    dryRun: options.dryRun,
    matched: chosen.length,
    done: 0,
    expired:
      action === 'replay' ? chosen.filter((entry) => !entry.expiresAt || Date.parse(entry.expiresAt) <= now).length : 0,
    failed: [],
  };
  if (selection.jobId !== undefined && !chosen.length) {
    result.failed.push({ jobId: selection.jobId, error: 'not in the dead-letter queue' });
  }
  if (options.dryRun) return result;
  for (const entry of chosen) {
    try {
      const at = options.clock();
      const ok = await (action === 'replay'
        ? dlq.replay(
            selection.type,
            entry.jobId,
            options.extendMs === undefined ? { now: at } : { now: at, expiresAt: at + options.extendMs },
          )
        : dlq.purge(selection.type, entry.jobId));
      if (ok) result.done += 1;
      else result.failed.push({ jobId: entry.jobId, error: 'not in the dead-letter queue' });
    } catch (error) {
      result.failed.push({ jobId: entry.jobId, error: (error as Error).message });
    }
  }
  return result;
}
