/** `aftercall sweep`: one expiry sweep now, its counts as one JSON line. */
import { createRedisConnection } from '../../redis/connection.js';
import { sweepExpiredJobs } from '../../worker/expiry-sweeper.js';
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'sweep',
  synopsis: ['aftercall sweep'],
  summary: 'Run one expiry sweep now (workers run it every SWEEP_INTERVAL anyway).',
  options: {},
  async run(_args, { config: loadConfig, io }) {
    const config = loadConfig();
    const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-sweep' });
    try {
      const result = await sweepExpiredJobs(client, { prefix: config.prefix, batchSize: config.sweeper.batchSize });
      io.stdout.write(
        `${JSON.stringify({ expired: result.expired, dropped: result.dropped, durationMs: Math.round(result.durationMs) })}\n`,
      );
      return 0;
    } finally {
      client.disconnect();
    }
  },
});
