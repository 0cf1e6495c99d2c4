/**
 * `aftercall dlq ...`: the dead-letter queue.
 *   list   [--type T] [--reason R] [--limit N] [--json]   (with each entry's attempts in brief)
 *   show   --type T --job ID [--json]                     (one entry with every attempt)
 *   replay --type T (--job ID | --all [--reason R]) [--extend DURATION]
 *   purge  --type T (--job ID | --all [--reason R])
 */
import { DEAD_LETTER_REASONS, DeadLetterQueue } from '../../redis/dead-letter-queue.js';
import { createRedisConnection } from '../../redis/connection.js';
import { taskTypes } from '../../tasks/catalog.js';
import { choice, duration, integer, required, UsageError } from '../args.js';
import { defineCommand } from '../command.js';
import { attemptsTable, historySummary, table } from '../io.js';

export const command = defineCommand({
  name: 'dlq',
  synopsis: [
    'aftercall dlq list [--type T] [--reason R] [--limit N] [--json]',
    'aftercall dlq show --type T --job ID [--json]',
    'aftercall dlq replay --type T (--job ID | --all [--reason R]) [--extend DURATION]',
    'aftercall dlq purge --type T (--job ID | --all [--reason R])',
  ],
  summary: `Inspect, replay or delete dead-lettered tasks (reasons: expired, exhausted,
terminal, invalid).`,
  options: {
    type: { type: 'string' },
    reason: { type: 'string' },
    job: { type: 'string' },
    all: { type: 'boolean' },
    limit: { type: 'string' },
    extend: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: true,
  async run({ values, positionals }, context) {
    const action = positionals[0];
    if (action !== 'list' && action !== 'show' && action !== 'replay' && action !== 'purge') {
      throw new UsageError('expected dlq list, dlq show, dlq replay or dlq purge');
    }
    const reason = choice('reason', values.reason, DEAD_LETTER_REASONS);
    const type = choice('type', values.type, taskTypes);
    const limit = integer('limit', values.limit, { min: 1 }) ?? 1000;
    const extendMs = duration('extend', values.extend);
    const config = context.config();
    const { io } = context;
    const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-dlq' });
    const dlq = new DeadLetterQueue(client, config.prefix);
    try {
      if (action === 'list') {
        const entries = await dlq.list({ ...(type && { types: [type] }), ...(reason && { reason }), limit });
        if (values.json) io.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
        else if (!entries.length) io.stdout.write('the dead-letter queue is empty\n');
        else
          io.stdout.write(
            table(
              entries.map((entry) => ({ ...entry, history: historySummary(entry.history) })),
              [
                'type',
                'reason',
                'conversationId',
                'attempts',
                'history',
                'deadLetteredAt',
                'expiresAt',
                'lastError',
                'jobId',
              ],
            ),
          );
        return 0;
      }
      if (action === 'show') {
        const from = required('type', type, `one of ${taskTypes.join(', ')}`);
        const jobId = required('job', values.job, 'a job id from dlq list');
        const entry = await dlq.get(from, jobId);
        if (!entry) {
          io.stderr.write(`${from} job ${jobId} is not in the dead-letter queue\n`);
          return 1;
        }
        if (values.json) io.stdout.write(`${JSON.stringify(entry, null, 2)}\n`);
        else {
          const { history, payload: _payload, ...fields } = entry;
          const width = Math.max(...Object.keys(fields).map((name) => name.length));
          for (const [name, value] of Object.entries(fields))
            io.stdout.write(`${name.padEnd(width)}  ${value ?? '-'}\n`);
          io.stdout.write(`attempts:\n${attemptsTable(history)}`);
        }
        return 0;
      }
      const from = required('type', type, `one of ${taskTypes.join(', ')}`);
      if (!values.job === !values.all) throw new UsageError('give either --job ID or --all');
      const jobIds = values.job
        ? [values.job]
        : (await dlq.list({ types: [from], ...(reason && { reason }), limit: Number.MAX_SAFE_INTEGER })).map(
            (entry) => entry.jobId,
          );
      let done = 0;
      let failed = 0;
      for (const jobId of jobIds) {
        try {
          const ok =
            action === 'replay'
              ? await dlq.replay(from, jobId, extendMs === undefined ? {} : { expiresAt: Date.now() + extendMs })
              : await dlq.purge(from, jobId);
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
      io.stdout.write(`${action === 'replay' ? 'replayed' : 'purged'} ${done} of ${jobIds.length} ${from} entries\n`);
      return failed ? 1 : 0;
    } finally {
      client.disconnect();
    }
  },
});
