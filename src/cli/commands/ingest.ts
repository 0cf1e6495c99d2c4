/**
 * `aftercall ingest rejected list|replay|purge`: platform events that verified but could
 * not be mapped to an outcome (src/redis/rejected-events.ts).
 *   list   [--platform P] [--limit N] [--json]
 *   replay (--id ID ... | --all) [--dry-run]   map again with the current mapping and enqueue
 *   purge  (--id ID ... | --all) [--dry-run]   delete for good
 * Replay reads the mapping as the server does (PLATFORM_MAPPING_FILE,
 * PLATFORM_DEFAULT_OUTCOME). Exit 1 when an event still does not map or is not there.
 */
import { createProducer } from '../../producer/producer.js';
import { createRedisConnection } from '../../redis/connection.js';
import { RejectedEventStore } from '../../redis/rejected-events.js';
import { loadHttpConfig } from '../../http/environment.js';
import { createIngest } from '../../http/platforms/ingest.js';
import { loadMapping } from '../../http/platforms/mapping.js';
import { PLATFORM_NAMES } from '../../http/platforms/platform.js';
import { choice, integer, UsageError } from '../args.js';
import { defineCommand } from '../command.js';
import { table } from '../io.js';

export const command = defineCommand({
  name: 'ingest',
  synopsis: [
    'aftercall ingest rejected list [--platform P] [--limit N] [--json]',
    'aftercall ingest rejected replay (--id ID | --all) [--dry-run]',
    'aftercall ingest rejected purge (--id ID | --all) [--dry-run]',
  ],
  summary: `Platform events (Vapi, Retell, ElevenLabs) that verified but could not be mapped:
list them, map them again after fixing the mapping, or delete them.`,
  options: {
    platform: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    id: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
  },
  positionals: true,
  async run({ values, positionals }, context) {
    const [store, action] = positionals;
    if (store !== 'rejected' || (action !== 'list' && action !== 'replay' && action !== 'purge')) {
      throw new UsageError('expected ingest rejected list, ingest rejected replay or ingest rejected purge');
    }
    const platform = choice('platform', values.platform, PLATFORM_NAMES);
    const limit = integer('limit', values.limit, { min: 1 }) ?? 1000;
    const ids = values.id ?? [];
    if (action !== 'list' && !ids.length === !values.all)
      throw new UsageError('give either --id ID (repeatable) or --all');
    const config = context.config();
    const http = loadHttpConfig(context.io.env);
    const { io } = context;
    const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-ingest' });
    const rejected = new RejectedEventStore(client, config.prefix);
    try {
      if (action === 'list') {
        const page = await rejected.list({ limit, ...(platform && { platform }) });
        if (values.json) io.stdout.write(`${JSON.stringify(page.items, null, 2)}\n`);
        else if (!page.items.length) io.stdout.write('no rejected platform events\n');
        else
          io.stdout.write(
            table(page.items as unknown as Record<string, unknown>[], [
              'id',
              'platform',
              'receivedAt',
              'deliveries',
              'reason',
            ]),
          );
        return 0;
      }
      const selected = values.all ? await rejected.ids() : ids;
      const dryRun = values['dry-run'] ?? false;
      if (action === 'purge') {
        let missing = 0;
        for (const id of selected) {
          const present = dryRun ? (await rejected.get(id)) !== undefined : await rejected.remove(id);
          if (!present) {
            missing += 1;
            io.stderr.write(`${id}: not in the rejected-events store\n`);
          }
        }
        io.stdout.write(`${dryRun ? 'would purge' : 'purged'} ${selected.length - missing} of ${selected.length}\n`);
        return missing ? 1 : 0;
      }
      const producer = createProducer({
        redis: config.redis,
        waitReplicas: config.waitReplicas,
        prefix: config.prefix,
        tasks: config.tasks,
        dedupeWindowMs: config.dedupeWindowMs,
        timeoutMs: config.producerTimeoutMs,
      });
      try {
        const ingest = createIngest({
          producer,
          store: rejected,
          mapping: loadMapping(http.mappingFile, http.defaultOutcome),
        });
        const result = await ingest.replay({ ids: selected, dryRun });
        for (const { id, reason } of result.rejected) io.stderr.write(`${id}: still rejected: ${reason}\n`);
        for (const id of result.missing) io.stderr.write(`${id}: not in the rejected-events store\n`);
        io.stdout.write(
          `${dryRun ? 'would replay' : 'replayed'} ${result.replayed.length} of ${selected.length}` +
            `${result.rejected.length ? `; ${result.rejected.length} still rejected` : ''}\n`,
        );
        return result.rejected.length || result.missing.length ? 1 : 0;
      } finally {
        await producer.close();
      }
    } finally {
      client.disconnect();
    }
  },
});
