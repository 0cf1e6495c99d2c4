/**
 * Scenario 2, Redis restarts: a Redis of the test's own, append-only file on, restarted
 * mid-run, once with SIGTERM and once with SIGKILL. With `appendfsync always` every
 * enqueue that resolved is still there after the restart, and nothing is lost; with
 * `everysec` a crash may lose what was written in the last second: reported. Workers and
 * producers reconnect without being restarted.
 *
 * SMS: while Redis is away, no worker can renew its job locks. A lock that lapses during
 * the outage makes its job stalled: once Redis is back, BullMQ's stalled-job check hands
 * it to another worker while the first may still be sending its SMS, and the second
 * cannot tell an SMS in flight from one never sent. Only that duplicate is allowed: one
 * whose job ran twice at once, both runs completing it (`smsDuplicates` in the harness);
 * any other SMS sent twice fails the test.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis-server.js';
import { uniquePrefix } from '../helpers/redis.js';
import {
  account,
  avoidableSmsDuplicates,
  invariantViolations,
  Load,
  report,
  scale,
  settle,
  sleep,
  smsDuplicates,
  startFleet,
  type Fleet,
} from './harness.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function run(appendfsync: 'always' | 'everysec', restarts: ('SIGTERM' | 'SIGKILL')[]) {
  const server: PrivateRedis = await startPrivateRedis({ appendfsync });
  cleanups.push(() => server.destroy());
  const prefix = uniquePrefix(`chaos-redis-${appendfsync}`);
  const fleet: Fleet = await startFleet({
    prefix,
    workers: 2,
    redisUrl: server.url,
    sandbox: { faults: { latencyMs: { min: 5, max: 40, tailRate: 0, tailMs: 0 } } },
  });
  cleanups.push(() => fleet.stop());
  const load = new Load({
    redisUrl: server.url,
    prefix,
    timeoutMs: 500,
    tasks: { follow_up_survey: { settings: { delay: 0 } } },
  });
  const conversations = scale(120, 1_500);
  const outcomes = Array.from({ length: conversations }, (_, index) =>
    syntheticOutcome(index, { runId: prefix, now: Date.now() }),
  );

  const feeding = load.run(outcomes, scale(30, 50));
  const restartLog: string[] = [];
  for (const [index, signal] of restarts.entries()) {
    await sleep(scale(1_500, 8_000) * (index === 0 ? 1 : 1.2));
    const before = load.accepted.size;
    await server.stop(signal);
    await sleep(scale(700, 2_000));
    await server.start();
    restartLog.push(`${signal} after ${before} accepted tasks`);
  }
  await feeding;
  await load.close();
  const client = new Redis(server.url, { maxRetriesPerRequest: null });
  cleanups.push(async () => client.disconnect());
  await settle(client, fleet, load, scale(60_000, 300_000));
  // Counted once more after settling: the last word, whatever the loop saw on its way.
  const accounting = await account(client, fleet, load);
  const duplicates = await smsDuplicates(fleet, load);
  return { accounting, load, fleet, restartLog, duplicates };
}

describe('reliability: Redis restarts', () => {
  it('with appendfsync always, keeps every accepted task through a SIGTERM and a SIGKILL restart; workers and producers reconnect', async () => {
    const { accounting, load, fleet, restartLog, duplicates } = await run('always', ['SIGTERM', 'SIGKILL']);
    report('2a. Redis restarts (appendfsync always)', accounting, {
      restarts: restartLog,
      producerCallsRefused: load.unavailable,
      smsDuplicates: duplicates,
    });
    expect(load.unavailable).toBeGreaterThan(0); // the producer noticed, and the outcomes were sent again
    expect(fleet.workers.every((worker) => worker.process.exitCode === null)).toBe(true); // no worker was restarted
    // an SMS sent twice only by two runs of its job at once (see the header)
    expect(avoidableSmsDuplicates(duplicates)).toEqual([]);
    expect(invariantViolations(accounting, { allowSmsDuplicates: duplicates.length })).toEqual([]);
  });

  it('with appendfsync everysec, reports what a crash lost', async () => {
    const { accounting, load, restartLog, duplicates } = await run('everysec', ['SIGKILL']);
    report('2b. Redis crash (appendfsync everysec)', accounting, {
      restarts: restartLog,
      producerCallsRefused: load.unavailable,
      smsDuplicates: duplicates,
    });
    // A crash may lose up to a second of writes: accepted tasks among them are reported, not asserted.
    expect(accounting.stale).toBe(0);
    expect(accounting.duplicates.resend).toBe(0);
  });
});
