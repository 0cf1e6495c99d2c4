/**
 * Scenario 3, provider storm: for a while, 30 % of provider requests fail with 5xx, 10 %
 * get 429 with Retry-After, 5 % hang past the client timeout, with a long tail of
 * latency; then the providers recover. Every task is delivered or dead-lettered with a
 * reason, nothing is delivered after its expiry, and a task that expires is dead-lettered
 * when it does (by the retry horizon, at pickup, or by the next sweep).
 *
 * "When it does" is checked structurally, twice during the storm, not timed: with the
 * queues paused and no job active (so nothing moves while the test looks), a sweep at an
 * injected `now` leaves no waiting, delayed or retrying job whose expiry has passed,
 * except one the sweeper will look at again within its re-check interval (a job a worker
 * held at an earlier sweep, whose lock then lapsed on this loaded machine); and no job
 * waits for a retry that could not end before its expiry. How long after its expiry each
 * expired task was dead-lettered is reported, not judged.
 *
 * No SMS may go out twice: a hung send (the client timed out, Twilio took it) is found
 * again in Twilio's message list before a resend, and a 5xx or 429 created nothing. The
 * one exception is a job that ran twice at once (a worker starved of CPU could not renew
 * its lock): both runs completed it (`smsDuplicates` in the harness).
 */
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { DeadLetterQueue } from '../../src/redis/dead-letter-queue.js';
import { queueName, typeKeys } from '../../src/redis/keys.js';
import { taskTypes } from '../../src/tasks/catalog.js';
import { sweepExpiredJobs } from '../../src/worker/expiry-sweeper.js';
import { forgottenPastExpiry, pendingJobs, pendingPastExpiry, retriesPastHorizon } from '../helpers/pending.js';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';
import {
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

const prefix = uniquePrefix('chaos-storm');
/** The sweeper's re-check interval for an expired job it found active (its default). */
const RECHECK_MS = 5_000;
const client = redis();
let fleet: Fleet | undefined;

afterAll(async () => {
  await fleet?.stop();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('reliability: provider storm', () => {
  it('delivers or dead-letters every task, never stale, through a storm of provider faults', async () => {
    const stormMs = scale(10_000, 60_000);
    // Short expiries, so that the storm makes some tasks expire: e-mails after 3 s (full: 5 s).
    const emailExpiryMs = scale(3_000, 5_000);
    fleet = await startFleet({
      prefix,
      workers: 3,
      env: { WEBHOOK_TIMEOUT: '1s' },
      sandbox: {
        faults: {
          serverErrorRate: 0.3,
          rateLimitRate: 0.1,
          retryAfterSeconds: 2,
          hangRate: 0.05,
          hangMs: 3_000,
          latencyMs: { min: 5, max: 80, tailRate: 0.05, tailMs: 700 },
        },
      },
    });
    const load = new Load({
      redisUrl: REDIS_URL,
      prefix,
      tasks: {
        follow_up_survey: { settings: { delay: 0 } },
        send_email: { settings: { expiresAfter: emailExpiryMs } },
      },
    });
    const conversations = scale(200, 2_000);
    const stormStarted = Date.now();
    const checkpoints: { at: string; swept: number; pending: number; retrying: number; dueForRecheck: string[] }[] = [];
    const violations: string[] = [];
    const queues = taskTypes.map((type) => new Queue(queueName(type), { connection: client, prefix }));
    /** With the queues paused and no job active: a sweep at an injected now, then a look at what is pending. */
    const checkpoint = async () => {
      await Promise.all(queues.map((queue) => queue.pause()));
      try {
        await waitUntil(
          () => Promise.all(taskTypes.map((type) => client.llen(typeKeys(prefix, type).active))),
          (active) => active.every((count) => count === 0),
          'the active jobs to finish',
          60_000,
        );
        const now = Date.now();
        const swept = await sweepExpiredJobs(client, { prefix, now });
        const dueForRecheck = await pendingPastExpiry(client, prefix, now);
        violations.push(...(await forgottenPastExpiry(client, prefix, now, RECHECK_MS)));
        violations.push(...(await retriesPastHorizon(client, prefix, 1_000)));
        const pending = await pendingJobs(client, prefix);
        checkpoints.push({
          at: `${now - stormStarted} ms into the storm`,
          swept: Object.values(swept.expired).reduce((sum, count) => sum + count, 0),
          pending: pending.length,
          retrying: pending.filter((job) => job.state === 'retrying').length,
          dueForRecheck,
        });
      } finally {
        await Promise.all(queues.map((queue) => queue.resume()));
      }
    };
    const feeding = load.run(
      { count: conversations, make: (index) => syntheticOutcome(index, { runId: prefix, now: Date.now() }) },
      conversations / (stormMs / 1_000),
    );
    await sleep(stormMs / 2);
    await checkpoint();
    await feeding;
    await sleep(Math.max(0, stormMs - (Date.now() - stormStarted)));
    await checkpoint();
    await Promise.all(queues.map((queue) => queue.close()));
    const stats = fleet.sandbox.stats();
    fleet.sandbox.setFaults({ serverErrorRate: 0, rateLimitRate: 0, hangRate: 0, latencyMs: { tailRate: 0 } });
    await load.close();

    const accounting = await settle(client, fleet, load, scale(60_000, 300_000));
    // How long after its expiry each expired task was dead-lettered.
    const expired = (await new DeadLetterQueue(client, prefix).list({ reason: 'expired', limit: 100_000 })).map(
      (entry) => Date.parse(entry.deadLetteredAt!) - Date.parse(entry.expiresAt!),
    );
    const maxLagMs = expired.length ? Math.max(...expired) : 0;
    const duplicates = await smsDuplicates(fleet, load);
    report('3. Provider storm', accounting, {
      stormMs,
      checkpoints,
      smsDuplicates: duplicates,
      faultsInjected: stats.faults,
      requests: stats.requests,
      expiredDeadLettered: expired.length,
      maxDeadLetterLagAfterExpiryMs: maxLagMs,
    });
    console.log(
      `storm: ${stats.requests} provider requests, faults ${JSON.stringify(stats.faults)}; ${expired.length} expired tasks dead-lettered, at most ${maxLagMs} ms after their expiry; checkpoints ${JSON.stringify(checkpoints)}`,
    );
    expect(stats.faults.serverErrors + stats.faults.rateLimited + stats.faults.hung).toBeGreaterThan(0);
    // Dead-lettered when expired: nothing pending past its expiry after a sweep, no retry
    // past the horizon, at checkpoints that did find work pending.
    expect({
      invariant: invariantViolations(accounting, { allowSmsDuplicates: duplicates.length }),
      avoidableSmsDuplicates: avoidableSmsDuplicates(duplicates),
      pending: accounting.pending,
      checkpointsWithWork: checkpoints.filter((point) => point.pending > 0).length,
      pastExpiryOrHorizon: violations,
    }).toEqual({
      invariant: [],
      avoidableSmsDuplicates: [],
      pending: 0,
      checkpointsWithWork: 2,
      pastExpiryOrHorizon: [],
    });
  });
});
