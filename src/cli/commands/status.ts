/** `aftercall status <conversationId> [--json]`: what became of a conversation's tasks. */
import type { AftercallConfig } from '../../config/environment.js';
import { createRedisConnection } from '../../redis/connection.js';
import { conversationStatus } from '../../ops/status.js';
import { table, type CommandIO } from '../io.js';

export async function statusCommand(
  conversationId: string | undefined,
  json: boolean,
  config: AftercallConfig,
  io: CommandIO,
): Promise<number> {
  if (!conversationId) {
    io.stderr.write('usage: aftercall status <conversationId> [--json]\n');
    return 2;
  }
  const client = createRedisConnection('worker', { url: config.redisUrl, name: 'aftercall-status' });
  try {
    const entries = await conversationStatus(client, config.prefix, conversationId);
    if (json) io.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
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
        ]),
      );
    return 0;
  } finally {
    client.disconnect();
  }
}
