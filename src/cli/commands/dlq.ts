/**
 * `aftercall dlq ...`: the dead-letter queue.
 *   list   [--type T] [--reason R] [--since T] [--until T] [--limit N] [--json]   (attempts in brief)
 *   show   --type T --job ID [--json]                                         (every attempt)
 *   replay --type T (--job ID | --all [--reason R] [--since T] [--until T]) [--extend DURATION] [--dry-run]
 *   purge  --type T (--job ID | --all [--reason R] [--since T] [--until T]) [--dry-run]
 * Selectors (the HTTP API's too): type, reason, and a time range of dead-lettering (--since,
 * --until: ISO-8601 with offset, or a duration ago). --dry-run counts what would be touched
 * (and, for a replay, how many have expired and need --extend) and changes nothing. An entry
 * whose expiry has passed is never replayed without a new one (--extend).
 */
import { actOnDeadLetters } from '../../ops/dead-letter-actions.js';
import { DEAD_LETTER_REASONS, DeadLetterQueue } from '../../redis/dead-letter-queue.js';
import { createRedisConnection } from '../../redis/connection.js';
import { taskTypes } from '../../tasks/catalog.js';
import { choice, duration, integer, pointInTime, required, UsageError } from '../args.js';
import { defineCommand } from '../command.js';
import { attemptsTable, historySummary, table } from '../io.js';

export const command = defineCommand({
  name: 'dlq',
  synopsis: [
    'aftercall dlq list [--type T] [--reason R] [--since TIME] [--until TIME] [--limit N] [--json]',
    'aftercall dlq show --type T --job ID [--json]',
    'aftercall dlq replay --type T (--job ID | --all [--reason R] [--since TIME] [--until TIME]) [--extend DURATION] [--dry-run]',
    'aftercall dlq purge --type T (--job ID | --all [--reason R] [--since TIME] [--until TIME]) [--dry-run]',
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
    since: { type: 'string' },
    until: { type: 'string' },
    'dry-run': { type: 'boolean' },
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
    const now = Date.now();
    const since = pointInTime('since', values.since, now);
    const until = pointInTime('until', values.until, now);
    if (since !== undefined && until !== undefined && since > until) {
      throw new UsageError('--since: expected a time before --until');
    }
    const range = { ...(since !== undefined && { since }), ...(until !== undefined && { until }) };
    const config = context.config();
    const { io } = context;
    const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-dlq' });
    const dlq = new DeadLetterQueue(client, config.prefix);
    try {
      if (action === 'list') {
        const entries = await dlq.list({ ...(type && { types: [type] }), ...(reason && { reason }), ...range, limit });
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
      if (values.job && (reason || since !== undefined || until !== undefined)) {
        throw new UsageError('--reason, --since and --until select entries for --all, not for --job');
      }
      const result = await actOnDeadLetters(
        dlq,
        action,
        { type: from, ...(values.job ? { jobId: values.job } : { ...(reason && { reason }), ...range }) },
        { dryRun: !!values['dry-run'], clock: Date.now, ...(extendMs !== undefined && { extendMs }) },
      );
      if (result.dryRun) {
        io.stdout.write(`dry run: would ${action} ${result.matched} ${from} entries\n`);
        if (action === 'replay' && result.expired) {
          io.stdout.write(
            extendMs === undefined
              ? `${result.expired} of them have expired and will not be replayed without --extend\n`
              : `${result.expired} of them have expired and get a new expiry in ${values.extend}\n`,
          );
        }
        return 0;
      }
      for (const failure of result.failed) io.stderr.write(`${failure.jobId}: ${failure.error}\n`);
      const tried = result.matched || (values.job ? 1 : 0);
      io.stdout.write(`${action === 'replay' ? 'replayed' : 'purged'} ${result.done} of ${tried} ${from} entries\n`);
      return result.failed.length ? 1 : 0;
    } finally {
      client.disconnect();
    }
  },
});
