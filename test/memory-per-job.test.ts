/**
 * What a worker keeps per job: the heap in use right after a forced full garbage
 * collection, before and after 6,000 jobs, divided by the jobs. Both readings follow a
 * full collection, so the heap's sawtooth between collections does not count. On the
 * 2-core machine this measured 31 to 43 bytes per job; keeping nothing more than each
 * job's id string in an array raised it to 95. So the bound, 80, catches the smallest
 * leak there is (a job object, a listener, a timer or a map entry per job is far larger).
 *
 * No clock is read: the jobs are counted, not timed. The long run (100,000 jobs, RSS over
 * time) is `npm run chaos` (leaks.test.ts) and `npm run bench` (memory).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { SETTLE_FLUSH_MS } from '../src/redis/conversation-settlement.js';
import { startWorker } from '../src/worker/worker.js';
import { redis, REDIS_URL, removePrefix, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const prefix = uniquePrefix('memory-per-job');
const client = redis();

afterAll(async () => {
  await removePrefix(client, prefix);
  client.disconnect();
});

/** Heap in use after full collections (several, so that objects freed by finalizers go too). */
function retainedHeap(): number {
  for (let round = 0; round < 4; round += 1) gc();
  return process.memoryUsage().heapUsed;
}

describe('memory per job', () => {
  it('keeps under 80 bytes of heap per job once warm (after forced full collections)', async () => {
    let completed = 0;
    const worker = await startWorker({
      config: testConfig(prefix, 'http://127.0.0.1:9'),
      queues: ['update_crm'],
      concurrency: 20,
      sweeper: false,
      ports: { update_crm: { provider: 'webhook', deliver: async () => ({ provider: 'webhook', status: 200 }) } },
      onOutcome: (event) => {
        if (event.result === 'completed') completed += 1;
      },
    });
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    let sent = 0;
    const run = async (jobs: number) => {
      const target = completed + jobs;
      for (let batch = 0; batch < jobs; batch += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, jobs - batch) }, () => {
            sent += 1;
            return producer.conversationEnded({
              conversationId: `mem-${sent}`,
              endedAt: new Date().toISOString(),
              outcome: 'no_action',
              customer: { id: 'c' },
            });
          }),
        );
      }
      await waitUntil(
        () => completed,
        (count) => count >= target,
        `${jobs} jobs completed`,
        120_000,
      );
    };
    try {
      await worker.ready;
      await run(1_500); // warm: code compiled, pools and caches filled
      // Finished tasks wait up to SETTLE_FLUSH_MS to be counted down in one batch per
      // conversation anchor: let each batch go before reading, so a buffer is not read as a leak.
      const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_FLUSH_MS + 500));
      await settle();
      const before = retainedHeap();
      const jobs = 6_000;
      await run(jobs);
      await settle();
      const after = retainedHeap();
      const perJob = (after - before) / jobs;
      console.log(
        `memory per job: heap after full GC ${(before / 2 ** 20).toFixed(2)} MB, then ${(after / 2 ** 20).toFixed(2)} MB after ${jobs} more jobs: ${perJob.toFixed(1)} bytes per job`,
      );
      // (a job whose lock lapsed on a loaded machine may run twice: at least every job ran)
      expect(completed).toBeGreaterThanOrEqual(1_500 + jobs);
      expect(perJob).toBeLessThan(80);
    } finally {
      await worker.close();
      await producer.close();
    }
  });
});
