/**
 * Scenario 1, worker crashes: three worker processes and a steady load; every few seconds
 * one of them, chosen at random, is killed with SIGKILL and a new one started. Nothing is
 * lost, no e-mail or webhook effect happens twice; SMS duplicates are what the ledger's
 * one window allows (a kill between Twilio's answer and the ledger write), reported.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { invariantViolations, Load, report, running, scale, settle, sleep, startFleet, type Fleet } from './harness.js';

const prefix = uniquePrefix('chaos-crash');
const client = redis();
let fleet: Fleet | undefined;

afterAll(async () => {
  await fleet?.stop();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('reliability: worker crashes', () => {
  it('loses nothing and delivers each e-mail and webhook effect once while workers are SIGKILLed', async () => {
    // Full size: 3,600 conversations, about 8,000 tasks.
    const conversations = scale(150, 3_600);
    const killEveryMs = scale(1_500, 3_000);
    fleet = await startFleet({
      prefix,
      workers: 3,
      sandbox: { faults: { latencyMs: { min: 5, max: 60, tailRate: 0, tailMs: 0 } } },
    });
    const load = new Load({ redisUrl: REDIS_URL, prefix, tasks: { follow_up_survey: { settings: { delay: 0 } } } });
    const outcomes = Array.from({ length: conversations }, (_, index) =>
      syntheticOutcome(index, { runId: prefix, now: Date.now() }),
    );

    let kills = 0;
    let killing = true;
    const killer = (async () => {
      while (killing) {
        await sleep(killEveryMs);
        if (!killing) break;
        const alive = running(fleet!);
        const victim = alive[Math.floor(Math.random() * alive.length)];
        if (!victim) continue;
        victim.kill('SIGKILL');
        kills += 1;
        await fleet!.addWorker();
      }
    })();
    await load.run(outcomes, scale(40, 80));
    // keep killing while the backlog drains
    await sleep(scale(3_000, 10_000));
    killing = false;
    await killer;
    await load.close();

    const accounting = await settle(client, fleet, load, scale(60_000, 300_000));
    report('1. Worker crashes', accounting, { kills, workersStarted: fleet.workers.length });
    expect(kills).toBeGreaterThan(0);
    expect(accounting.accepted).toBeGreaterThan(conversations);
    expect(invariantViolations(accounting, { allowSmsDuplicates: kills })).toEqual([]);
  });
});
