/**
 * Scenario 7, leaks: after a run, Redis holds no keys beyond what the retention policy
 * allows (every key is counted by pattern: completed jobs are gone once the dedupe window
 * has passed, dead-letter entries and records with a TTL remain, nothing else), and a
 * worker's memory over a long run stays flat once warm.
 *
 * The long memory run needs its jobs done within a deadline, so it runs in `npm run
 * chaos` only (100,000 jobs), next to `npm run bench`'s memory benchmark; inside `npm
 * test`, memory-per-job.test.ts bounds the heap a worker keeps per job instead.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { DeadLetterQueue } from '../../src/redis/dead-letter-queue.js';
import { typeKeys } from '../../src/redis/keys.js';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { keysWithPrefix, redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';
import { FULL, invariantViolations, Load, report, scale, settle, sleep, startFleet, type Fleet } from './harness.js';

const client = redis();
const prefixes: string[] = [];
const fleets: Fleet[] = [];

afterAll(async () => {
  for (const fleet of fleets) await fleet.stop();
  for (const prefix of prefixes) await removePrefix(client, prefix);
  client.disconnect();
});

/** The keys a type's queue may hold after a run, besides job hashes. */
const STRUCTURAL =
  /^(wait|paused|delayed|prioritized|active|completed|failed|stalled|stalled-check|events|meta|id|marker|pc|limiter|expiry|retrying|dead-letter-counts|stats|repeat|job-schedulers|de)$/;
const WITH_TTL = /^(scope|conversation|sms-ledger|settle):/;
/** Each delivery destination's fleet-wide state: a few keys per destination, never per task. */
const DESTINATION = /^(state|grants|stats|queue)$/;

describe('reliability: leaks', () => {
  it('keeps only what the retention policy allows once the dedupe window has passed', async () => {
    const prefix = uniquePrefix('chaos-leak-keys');
    prefixes.push(prefix);
    const windowMs = 3_000;
    const fleet = await startFleet({
      prefix,
      workers: 2,
      env: { DEDUPE_WINDOW: `${windowMs}ms` },
      sandbox: { faults: { terminalRecipients: ['refused-1@demo.invalid', 'customer5@demo.example'] } },
    });
    fleets.push(fleet);
    const load = new Load({
      redisUrl: REDIS_URL,
      prefix,
      dedupeWindowMs: windowMs,
      tasks: { follow_up_survey: { settings: { delay: 0 } } },
    });
    const conversations = scale(150, 2_000);
    await load.run(
      Array.from({ length: conversations }, (_, index) => syntheticOutcome(index, { runId: prefix, now: Date.now() })),
      scale(60, 100),
    );
    await load.close();
    const accounting = await settle(client, fleet, load, scale(60_000, 300_000));
    expect(invariantViolations(accounting)).toEqual([]);

    // Past the dedupe window, and a few sweeps later, completed jobs are gone.
    await sleep(windowMs + 1_000);
    await waitUntil(
      async () => {
        let completed = 0;
        for (const type of new Set([...load.accepted.values()].map((task) => task.type)))
          completed += await client.zcard(typeKeys(prefix, type).completed);
        return completed;
      },
      (completed) => completed === 0,
      'completed jobs past the dedupe window to be removed',
      20_000,
    );
    const deadLetters = (await new DeadLetterQueue(client, prefix).list({ limit: 1_000_000 })).map(
      (entry) => `${entry.type}/${entry.jobId}`,
    );
    const keys = await keysWithPrefix(client, prefix);
    const unexpected: string[] = [];
    const jobHashes: string[] = [];
    const withoutTtl: string[] = [];
    for (const key of keys) {
      if (key.endsWith(':{destinations}')) continue; // the list of destinations used
      const match = /^[^{]*\{([^}]*)\}:(.*)$/.exec(key);
      if (!match) {
        unexpected.push(key);
        continue;
      }
      const [, tag, rest] = match as unknown as [string, string, string];
      if (STRUCTURAL.test(rest)) continue;
      if (tag.startsWith('dest:') && DESTINATION.test(rest)) continue;
      if (WITH_TTL.test(rest)) {
        if ((await client.pttl(key)) < 0) withoutTtl.push(key);
        continue;
      }
      if (tag === 'aftercall-maintenance') continue; // the sweeper's scheduler and its last 100 sweeps
      if (/%3A[^:]*$/.test(rest) && !rest.includes(':')) jobHashes.push(`${tag}/${rest}`);
      else unexpected.push(key);
    }
    const orphans = jobHashes.filter((job) => !deadLetters.includes(job));
    const byKind = keys.reduce<Record<string, number>>((counts, key) => {
      const kind =
        /\}:(scope|conversation|sms-ledger):/.exec(key)?.[1] ?? (/%3A/.test(key) ? 'job' : 'queue structure');
      counts[kind] = (counts[kind] ?? 0) + 1;
      return counts;
    }, {});
    report(
      '7a. Leaks: keys after the dedupe window',
      undefined,
      { keys: keys.length, byKind, deadLetters: deadLetters.length },
      `7a. Leaks: ${accounting.accepted} tasks accepted; after the dedupe window ${keys.length} keys remain: ${Object.entries(
        byKind,
      )
        .map(([kind, count]) => `${kind} ${count}`)
        .join(
          ', ',
        )}; ${deadLetters.length} dead-letter entries, ${orphans.length} job hashes beyond them, ${unexpected.length} unexpected keys, ${withoutTtl.length} records without a TTL`,
    );
    expect(unexpected).toEqual([]);
    expect(withoutTtl).toEqual([]);
    expect(orphans).toEqual([]);
    expect(jobHashes.length).toBe(deadLetters.length);
  });

  if (!FULL) {
    console.log(
      'leaks.test: skipped "keeps a worker\'s memory flat over a long run": it is bound by time and throughput, so it runs in npm run chaos only (memory-per-job.test.ts bounds the heap per job in npm test)',
    );
  }
  it.skipIf(!FULL)("keeps a worker's memory flat over a long run once warm", async () => {
    const prefix = uniquePrefix('chaos-leak-memory');
    prefixes.push(prefix);
    const fleet = await startFleet({ prefix, workers: 1, env: { WORKER_CONCURRENCY: '50', DEDUPE_WINDOW: '10s' } });
    fleets.push(fleet);
    const worker = fleet.workers[0]!;
    const jobs = 100_000;
    const rss = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${worker.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const load = new Load({ redisUrl: REDIS_URL, prefix });
    const samples: { done: number; rss: number }[] = [];
    let done = 0;
    const feeding = (async () => {
      for (let index = 0; index < jobs; index += 1) {
        await load.send({
          conversationId: `mem-${index}`,
          endedAt: new Date().toISOString(),
          outcome: 'no_action',
          customer: { id: 'c' },
        });
      }
    })();
    const deadline = Date.now() + 1_800_000;
    while (Date.now() < deadline) {
      done = worker.logs.filter((line) => line.msg === 'job completed').length;
      samples.push({ done, rss: rss() });
      if (done >= jobs) break;
      await sleep(250);
    }
    await feeding;
    await load.close();
    expect(done).toBe(jobs);
    // RSS swings with garbage collection, and V8 grows its heap for a while before it
    // settles; the floor (the lowest sample, right after a collection) is what a leak
    // raises. Once warm (after the first half of the jobs), the floor of the last quarter
    // must not be above the floor of the third quarter by more than the bound.
    const floor = (from: number, to: number) =>
      Math.min(
        ...samples
          .filter((sample) => sample.done >= jobs * from && sample.done <= jobs * to)
          .map((sample) => sample.rss),
      );
    const early = floor(0.5, 0.75);
    const late = floor(0.75, 1);
    const peak = Math.max(...samples.filter((sample) => sample.done >= jobs * 0.5).map((sample) => sample.rss));
    const growth = (late - early) / early;
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
    report(
      '7b. Leaks: worker memory',
      undefined,
      { jobs, samples: samples.length, earlyFloor: early, lateFloor: late, peak, growth },
      `7b. Leaks: worker RSS over ${jobs} jobs, once warm: floor ${mb(early)} then ${mb(late)} (${(growth * 100).toFixed(1)} %), peak ${mb(peak)}`,
    );
    expect(Number.isFinite(growth)).toBe(true);
    expect(growth).toBeLessThan(0.1);
  });
});
