/**
 * Scenario 5, rolling restart: under load, each worker in turn is replaced as a deploy
 * does it (a new process starts, then the old one gets SIGTERM). Each old process lets
 * its active jobs finish and exits 0 within its grace period; no job is left to the
 * stalled-job recovery; nothing is lost. "Within its grace period" is read from the
 * process itself, not timed: a worker whose grace period runs out says so in its log
 * ("grace period over", then it closes by force) and leaves its jobs to the stalled-job
 * recovery, which counts them on the job ("stc").
 */
import { afterAll, describe, expect, it } from 'vitest';
import { typeKeys } from '../../src/redis/keys.js';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { invariantViolations, Load, report, running, scale, settle, sleep, startFleet, type Fleet } from './harness.js';

const prefix = uniquePrefix('chaos-rolling');
const client = redis();
let fleet: Fleet | undefined;
const GRACE_MS = 10_000;

afterAll(async () => {
  await fleet?.stop();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('reliability: rolling restart', () => {
  it('replaces every worker under load: clean exits within the grace period, no stalled job, nothing lost', async () => {
    fleet = await startFleet({
      prefix,
      workers: 3,
      env: { SHUTDOWN_GRACE: `${GRACE_MS}ms`, LOCK_DURATION: '30s', STALLED_INTERVAL: '5s' },
      sandbox: { faults: { latencyMs: { min: 100, max: 400, tailRate: 0, tailMs: 0 } } },
    });
    const load = new Load({ redisUrl: REDIS_URL, prefix, tasks: { follow_up_survey: { settings: { delay: 0 } } } });
    // The load goes on until every worker has been replaced (and at least `conversations`
    // were sent), so each old worker has jobs in hand when it gets SIGTERM, however long a
    // new worker takes to start on a loaded machine.
    const conversations = scale(150, 1_500);
    const perSecond = scale(30, 40);
    let restarting = true;
    const feeding = (async () => {
      for (let index = 0; restarting || index < conversations; index += 1) {
        const outcome = syntheticOutcome(index, { runId: prefix, now: Date.now() });
        while (!(await load.send(outcome))) await sleep(200);
        await sleep(1_000 / perSecond);
      }
    })();

    const exits: {
      code: number | null;
      signal: string | null;
      ms: number;
      finishedDuringShutdown: number;
      forcedClose: boolean;
    }[] = [];
    for (const old of [...running(fleet)]) {
      await sleep(scale(1_000, 5_000));
      await fleet.addWorker();
      const started = Date.now();
      old.kill('SIGTERM');
      const exit = await old.exited;
      // jobs that were active at SIGTERM and finished in the grace period
      const stop = old.logs.findIndex((line) => line.msg === 'shutdown requested');
      const finishedDuringShutdown = old.logs.slice(stop).filter((line) => line.msg === 'job completed').length;
      const forcedClose = old.logs.some((line) => /^grace period over/.test(line.msg));
      exits.push({ ...exit, ms: Date.now() - started, finishedDuringShutdown, forcedClose });
    }
    restarting = false;
    await feeding;
    await load.close();
    const accounting = await settle(client, fleet, load, scale(60_000, 300_000));

    // No job went through the stalled-job recovery: BullMQ counts that per job ("stc").
    const pipeline = client.pipeline();
    const tasks = [...load.accepted.values()];
    for (const task of tasks) pipeline.hget(typeKeys(prefix, task.type).job(task.jobId), 'stc');
    const stalled = ((await pipeline.exec()) ?? []).filter(([, value]) => Number(value ?? 0) > 0).length;

    report('5. Rolling restart', accounting, { exits, stalledJobs: stalled, graceMs: GRACE_MS });
    console.log(
      `rolling restart: exits ${JSON.stringify(exits.map((exit) => `${exit.code} in ${exit.ms} ms, ${exit.finishedDuringShutdown} jobs finished after SIGTERM`))}, stalled jobs ${stalled}`,
    );
    expect(exits).toHaveLength(3);
    for (const exit of exits) {
      expect(exit).toMatchObject({ code: 0, signal: null, forcedClose: false });
    }
    expect(exits.reduce((sum, exit) => sum + exit.finishedDuringShutdown, 0)).toBeGreaterThan(0);
    expect(stalled).toBe(0);
    expect(invariantViolations(accounting)).toEqual([]);
  });
});
