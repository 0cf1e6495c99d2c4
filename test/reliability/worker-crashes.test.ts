/**
 * Scenario 1, worker crashes: three worker processes and a steady load; every few seconds
 * one of them, chosen at random, is killed with SIGKILL and a new one started. Nothing is
 * lost, and no effect happens twice: not an e-mail (Resend's idempotency key), not a
 * webhook's effect (its receiver deduplicates by key), not an SMS (a kill between
 * Twilio's answer and the ledger write leaves the `attempted:` mark, and the next worker
 * finds the message in Twilio's list instead of sending it again; the killed worker
 * sends nothing more, so nothing is in flight). The one SMS duplicate allowed is a job
 * that ran twice at once (a worker starved of CPU on a loaded machine could not renew its
 * lock, and the job was handed on while it was still sending): both runs completed it
 * (`smsDuplicates` in the harness). None is allowed after a kill.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import {
  avoidableSmsDuplicates,
  invariantViolations,
  Load,
  report,
  running,
  scale,
  settle,
  sleep,
  smsDuplicates,
  startFleet,
  type Fleet,
} from './harness.js';

const prefix = uniquePrefix('chaos-crash');
const client = redis();
let fleet: Fleet | undefined;

afterAll(async () => {
  await fleet?.stop();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('reliability: worker crashes', () => {
  it('loses nothing and delivers each e-mail, SMS and webhook effect once while workers are SIGKILLed', async () => {
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
    const duplicates = await smsDuplicates(fleet, load);
    report('1. Worker crashes', accounting, { kills, workersStarted: fleet.workers.length, smsDuplicates: duplicates });
    expect(kills).toBeGreaterThan(0);
    expect(accounting.accepted).toBeGreaterThan(conversations);
    expect(avoidableSmsDuplicates(duplicates)).toEqual([]);
    expect(invariantViolations(accounting, { allowSmsDuplicates: duplicates.length })).toEqual([]);
  });
});
