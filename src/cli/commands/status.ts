/**
 * `aftercall status <conversationId> [--json]`: what became of a conversation's tasks, then each
 * task's attempts (time, duration, result, destination, HTTP status, error); `--json` has them as `history`.
 */
import { conversationStatus } from '../../ops/status.js';
import { createRedisConnection } from '../../redis/connection.js';
import { UsageError } from '../args.js';
import { defineCommand } from '../command.js';
import { attemptsTable, table } from '../io.js';

export const command = defineCommand({
  name: 'status',
  synopsis: ['aftercall status <conversationId> [--json]'],
  summary: 'The tasks of a conversation and their states.',
  options: { json: { type: 'boolean' } },
  positionals: true,
  async run({ values, positionals }, context) {
    const conversationId = positionals[0];
    if (!conversationId) throw new UsageError('expected a conversation id: aftercall status <conversationId> [--json]');
    const config = context.config();
    const { io } = context;
    const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-status' });
    try {
      const entries = await conversationStatus(client, config.prefix, conversationId);
      if (values.json) io.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
      else if (!entries.length) io.stdout.write(`no tasks for conversation ${JSON.stringify(conversationId)}\n`);
      else
        io.stdout.write(
          table(entries as unknown as Record<string, unknown>[], [
            'type',
            'state',
            'attempts',
            'runAt',
            'expiresAt',
            'finishedAt',
            'deadLetterReason',
            'lastError',
          ]) +
            entries
              .filter((entry) => entry.history.length)
              .map((entry) => `\n${entry.type} attempts:\n${attemptsTable(entry.history)}`)
              .join(''),
        );
      return 0;
    } finally {
      client.disconnect();
    }
  },
});
