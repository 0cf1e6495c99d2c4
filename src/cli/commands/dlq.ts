/**
 * `aftercall dlq ...`: the dead-letter queue.
 *   list   [--type T] [--reason R] [--limit N] [--json]
 *   replay --type T (--job ID | --all [--reason R]) [--extend DURATION]
 *   purge  --type T (--job ID | --all [--reason R])
 */
import type { AftercallConfig } from '../../config/environment.js';
import { createRedisConnection } from '../../redis/connection.js';
import {
  DEAD_LETTER_REASONS,
  DeadLetterQueue,
  isDeadLetterReason,
  type DeadLetterReason,
} from '../../redis/dead-letter-queue.js';
import { isTaskType, taskTypes, type TaskType } from '../../tasks/catalog.js';
import { parseDuration } from '../../contract/time.js';
import { table, type CommandIO } from '../io.js';

export interface DlqArgs {
  action: string | undefined;
  type?: string;
  reason?: string;
  job?: string;
  all?: boolean;
  limit?: string;
  extend?: string;
  json?: boolean;
}

class UsageError extends Error {}

function checkType(type: string | undefined, required: boolean): TaskType | undefined {
  if (type === undefined) {
    if (required) throw new UsageError(`--type is required: one of ${taskTypes.join(', ')}`);
    return undefined;
  }
  if (!isTaskType(type)) throw new UsageError(`--type: expected one of ${taskTypes.join(', ')}`);
  return type;
}

function checkReason(reason: string | undefined): DeadLetterReason | undefined {
  if (reason === undefined) return undefined;
  if (!isDeadLetterReason(reason)) throw new UsageError(`--reason: expected one of ${DEAD_LETTER_REASONS.join(', ')}`);
  return reason;
}

export async function dlqCommand(args: DlqArgs, config: AftercallConfig, io: CommandIO): Promise<number> {
  const client = createRedisConnection('worker', { url: config.redisUrl, name: 'aftercall-dlq' });
  const dlq = new DeadLetterQueue(client, config.prefix);
  try {
    const reason = checkReason(args.reason);
    if (args.action === 'list') {
      const type = checkType(args.type, false);
      const limit = args.limit === undefined ? 1000 : Number(args.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit: expected a positive integer');
      const entries = await dlq.list({ ...(type && { types: [type] }), ...(reason && { reason }), limit });
      if (args.json) io.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
      else if (!entries.length) io.stdout.write('the dead-letter queue is empty\n');
      else
        io.stdout.write(
          table(entries as unknown as Record<string, unknown>[], [
            'type',
            'reason',
            'conversationId',
            'attempts',
            'deadLetteredAt',
            'expiresAt',
            'lastError',
            'jobId',
          ]),
        );
      return 0;
    }
    if (args.action === 'replay' || args.action === 'purge') {
      const type = checkType(args.type, true)!;
      if (!args.job === !args.all) throw new UsageError('give either --job ID or --all');
      const jobIds = args.job
        ? [args.job]
        : (await dlq.list({ types: [type], ...(reason && { reason }), limit: Number.MAX_SAFE_INTEGER })).map(
            (entry) => entry.jobId,
          );
      let extendMs: number | undefined;
      if (args.extend !== undefined) {
        extendMs = parseDuration(args.extend);
        if (extendMs === undefined) throw new UsageError('--extend: expected a duration such as 30m or 2h');
      }
      let done = 0;
      let failed = 0;
      for (const jobId of jobIds) {
        try {
          const ok =
            args.action === 'replay'
              ? await dlq.replay(type, jobId, extendMs === undefined ? {} : { expiresAt: Date.now() + extendMs })
              : await dlq.purge(type, jobId);
          if (ok) done += 1;
          else {
            failed += 1;
            io.stderr.write(`${jobId}: not in the dead-letter queue\n`);
          }
        } catch (error) {
          failed += 1;
          io.stderr.write(`${jobId}: ${(error as Error).message}\n`);
        }
      }
      io.stdout.write(
        `${args.action === 'replay' ? 'replayed' : 'purged'} ${done} of ${jobIds.length} ${type} entries\n`,
      );
      return failed ? 1 : 0;
    }
    throw new UsageError('expected dlq list, dlq replay or dlq purge');
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`aftercall dlq: ${error.message}\n`);
      return 2;
    }
    throw error;
  } finally {
    client.disconnect();
  }
}
