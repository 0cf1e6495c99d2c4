/**
 * Scenario 9, provider outage under load: Resend answers 503 to everything for 2 minutes
 * (20 s in `npm test`) in the middle of a steady load of conversations, with the production
 * retry policy (2 s base, doubling, 3 attempts for an e-mail) and the production circuit
 * (30 s window, 10 calls, half failing; its first cooldown 15 s, 5 s in `npm test`).
 * E-mails expire 2 minutes after their call (30 s in `npm test`), so some outlive the
 * outage and some do not.
 *
 * The invariant, beside the harness's: nothing lost, nothing exhausted; every task was
 * delivered or dead-lettered as expired, each by its own expiry (its lastError says why:
 * the destination unavailable since when, or the next attempt too late). From the
 * provider's side (the sandbox's count of requests answered 503 because of the outage):
 * no more requests during the outage than the circuit's threshold, plus the requests in
 * flight when it opened, plus its probes. The threshold counts the calls of the window
 * before the outage: with a failure ratio of 0.5, as many failures as there were calls.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { TrafficReport } from '../../dev/sandbox/sandbox.js';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { DeadLetterQueue } from '../../src/redis/dead-letter-queue.js';
import { redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { invariantViolations, Load, report, scale, settle, sleep, startFleet, type Fleet } from './harness.js';

const prefix = uniquePrefix('chaos-outage');
const client = redis();
let fleet: Fleet | undefined;

afterAll(async () => {
  await fleet?.stop();
  await removePrefix(client, prefix);
  client.disconnect();
});

const WORKERS = 3;
const CONCURRENCY = 20;
const CIRCUIT = { windowMs: 30_000, minCalls: 10, ratio: 0.5 };

describe('reliability: provider outage under load', () => {
  it(
    'rides out a Resend outage: 0 exhausted, 0 lost, only threshold, in-flight and probe requests while down',
    async () => {
      const beforeMs = scale(10_000, 60_000);
      const outageMs = scale(20_000, 120_000);
      const afterMs = scale(10_000, 60_000);
      const cooldownMs = scale(5_000, 15_000);
      const emailExpiryMs = scale(30_000, 120_000);
      fleet = await startFleet({
        prefix,
        workers: WORKERS,
        env: {
          // Production retries and circuit (the harness's are quicker), production locks.
          RETRY_BASE_DELAY: '2s',
          RETRY_MAX_DELAY: '60s',
          RETRY_JITTER: '1s',
          CIRCUIT_WINDOW: `${CIRCUIT.windowMs}ms`,
          CIRCUIT_MIN_CALLS: String(CIRCUIT.minCalls),
          CIRCUIT_FAILURE_RATIO: String(CIRCUIT.ratio),
          CIRCUIT_COOLDOWN: `${cooldownMs}ms`,
          LOCK_DURATION: '30s',
          STALLED_INTERVAL: '30s',
          WORKER_CONCURRENCY: String(CONCURRENCY),
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
      const perSecond = 6;
      const totalMs = beforeMs + outageMs + afterMs;
      const started = Date.now();
      const feeding = load.run(
        {
          count: Math.round((perSecond * totalMs) / 1_000),
          make: (index) => syntheticOutcome(index, { runId: prefix, now: Date.now() }),
        },
        perSecond,
      );
      await sleep(beforeMs);
      const outageStart = Date.now();
      fleet.sandbox.setFaults({ outages: { resend: { durationMs: outageMs } } });
      await feeding;
      await load.close();
      const loadEnded = Date.now();
      // Long enough for the last probe of the outage, its recovery and the backlog.
      const accounting = await settle(client, fleet, load, scale(120_000, 600_000));

      const response = await fetch(`${fleet.sandbox.url}/_sandbox/stats?destination=resend`);
      const resend = ((await response.json()) as TrafficReport).destinations.resend!;
      const outageEnd = outageStart + outageMs;
      // Calls in the circuit's window before the outage: the threshold is measured against them.
      const windowStart = outageStart - CIRCUIT.windowMs;
      const callsBefore = resend.seconds
        .filter((second) => Date.parse(second.start) >= windowStart && Date.parse(second.start) < outageStart)
        .reduce((sum, second) => sum + second.requests, 0);
      const threshold = Math.max(CIRCUIT.minCalls, Math.ceil((CIRCUIT.ratio / (1 - CIRCUIT.ratio)) * callsBefore) + 1);
      const inFlight = WORKERS * CONCURRENCY;
      // Probes: one when each cooldown ends (cooldown, then doubled), plus one for a probe's lease running out.
      let probes = 0;
      for (let at = cooldownMs; at <= outageMs; at += cooldownMs * 2 ** probes) probes += 1;
      probes += 1;
      const bound = threshold + inFlight + probes;

      const transitions = fleet.workers
        .flatMap((worker) => worker.logs)
        .filter((line) => line.destination === 'resend' && typeof line.state === 'string' && /is now/.test(line.msg))
        .map((line) => ({ at: Date.parse(String(line.time)), state: String(line.state) }))
        .sort((a, b) => a.at - b.at);
      const expired = (await new DeadLetterQueue(client, prefix).list({ reason: 'expired', limit: 100_000 })).map(
        (entry) => ({
          type: entry.type,
          lastError: entry.lastError ?? '',
          beforeExpiryMs: Date.parse(entry.expiresAt!) - Date.parse(entry.deadLetteredAt!),
        }),
      );
      const closedAt = transitions.find(
        (transition) => transition.state === 'closed' && transition.at >= outageEnd,
      )?.at;
      const exhausted = await new DeadLetterQueue(client, prefix).list({ reason: 'exhausted', limit: 100 });
      const details = {
        outageMs,
        cooldownMs,
        emailExpiryMs,
        loadMs: loadEnded - started,
        resendRequests: resend.requests,
        resendOk: resend.ok,
        duringOutage: resend.duringOutage,
        bound: { threshold, callsInWindowBefore: callsBefore, inFlight, probes, total: bound },
        transitions: transitions.map(
          (transition) => `${((transition.at - outageStart) / 1_000).toFixed(1)} s: ${transition.state}`,
        ),
        expired: expired.length,
        expiredByType: Object.fromEntries(
          [...new Set(expired.map((entry) => entry.type))].map((type) => [
            type,
            expired.filter((entry) => entry.type === type).length,
          ]),
        ),
        deadLetteredBeforeExpiryMs: expired.length
          ? {
              min: Math.min(...expired.map((entry) => entry.beforeExpiryMs)),
              max: Math.max(...expired.map((entry) => entry.beforeExpiryMs)),
            }
          : null,
        sampleExpiredError: expired[0]?.lastError ?? null,
        // How long the circuit stayed open after Resend was back: the cooldown in force then (doubling after each failed probe).
        closedAfterRecoveryMs: closedAt === undefined ? null : closedAt - outageEnd,
        exhausted: exhausted.map(
          (entry) =>
            `${entry.type} dead-lettered ${((Date.parse(entry.deadLetteredAt!) - outageStart) / 1_000).toFixed(1)} s into the outage: ${entry.lastError}`,
        ),
      };
      report('9. Provider outage under load', accounting, details);
      console.log(`provider outage: ${JSON.stringify(details)}`);

      expect(resend.duringOutage).toBeGreaterThan(0);
      expect({
        invariant: invariantViolations(accounting),
        exhaustedOrOther: Object.keys(accounting.deadLettered).filter((reason) => reason !== 'expired'),
        pending: accounting.pending,
        // Each expired task says why: its destination unavailable since when, held, or its next attempt too late.
        expiredWithoutAReason: expired
          .filter(
            (entry) =>
              !/unavailable since|held|could not end before expiresAt|too late|sooner than one delivery attempt may take/.test(
                entry.lastError,
              ),
          )
          .map((entry) => entry.lastError),
        requestsDuringOutageWithinBound: resend.duringOutage <= bound,
        // The circuit opened, and closed again after the outage.
        opened: transitions.some((transition) => transition.state === 'open'),
        closedAfterTheOutage: transitions.some(
          (transition) => transition.state === 'closed' && transition.at >= outageEnd,
        ),
      }).toEqual({
        invariant: [],
        exhaustedOrOther: [],
        pending: 0,
        expiredWithoutAReason: [],
        requestsDuringOutageWithinBound: true,
        opened: true,
        closedAfterTheOutage: true,
      });
    },
    scale(300_000, 45 * 60_000),
  );
});
