/**
 * Scenario 8, provider at its real limit: Resend allows 3 requests per second (a fixed
 * window, as Resend counts its per-team limit, answering 429 `rate_limit_exceeded` with
 * `ratelimit-*` headers above it), and the fleet is configured with that limit
 * (RESEND_RATE_LIMIT=3/s). Three worker processes take a steady load of conversations whose
 * e-mails alone ask for about 1.3 times the limit, for 5 minutes (30 s in `npm test`), so
 * e-mail work waits the whole time; the other channels go on beside it.
 *
 * The invariant, beside the harness's: nothing exhausted, nothing lost, waiting for the
 * limit used no attempt (every e-mail arrived on its first), and, from the provider's side
 * (its own `GET /_sandbox/stats`, not the fleet's account), no more than 3 requests in any
 * window of one second, wherever it starts.
 *
 * That last one is a timing: the fleet grants a request when every window has room, plus a
 * margin (3 % of the window, at least 30 ms), and the request reaches the provider some
 * time later. The scenario measures that way for every request: the grant's time (the
 * limiter's ZADD, seen through MONITOR) beside the provider's arrival stamp, and names the
 * requests of any window that held more than the limit. The provider runs in a process of
 * its own (sandbox-process.ts): in this process its stamps waited for this process' pauses.
 * On a machine starved of CPU the way reaches hundreds of milliseconds, and arrivals granted
 * in two windows land in one (bench/destination-rate.ts shows it). So the full run (`npm run
 * chaos`) judges it, and the reduced run in `npm test` reports it; both check that every
 * 429 the provider answered was absorbed without an attempt.
 *
 * Production job locks (30 s): the scenario is about the limit, not about a worker whose
 * lock lapses on a loaded machine (worker-crashes and the storm cover that).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { TrafficReport } from '../../dev/sandbox/sandbox.js';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { Redis } from 'ioredis';
import { uniquePrefix } from '../helpers/redis.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis-server.js';
import { FULL, invariantViolations, Load, report, scale, settle, startFleet, type Fleet } from './harness.js';
import type { SandboxProcess } from './sandbox-process.js';

const prefix = uniquePrefix('chaos-limit');
// A Redis of its own: MONITOR (below) then carries this scenario's commands only.
let privateRedis: PrivateRedis | undefined;
let client: Redis | undefined;
let fleet: Fleet<SandboxProcess> | undefined;

const LIMIT = 3;

afterAll(async () => {
  await fleet?.stop();
  client?.disconnect();
  await privateRedis?.destroy();
});

describe('reliability: provider at its real limit', () => {
  it(
    'keeps Resend within its limit in every window under sustained load: 0 exhausted, 0 lost',
    async () => {
      const loadMs = scale(30_000, 300_000);
      privateRedis = await startPrivateRedis();
      client = new Redis(privateRedis.url, { maxRetriesPerRequest: null });
      // Every grant, as the limiter writes it (a ZADD inside the acquire script, seen through
      // MONITOR): the worker's clock at the grant, beside the time the provider stamped the
      // request, measures the way from grant to provider for each request.
      const grants = new Map<string, number>();
      const grantsKey = `${prefix}:{dest:resend}:grants`;
      const monitor = await client.monitor();
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args[0]?.toUpperCase() === 'ZADD' && args[1] === grantsKey) {
          const member = args[3]!;
          // Job ids are percent-encoded; the provider records the idempotency key decoded.
          grants.set(decodeURIComponent(member.slice(0, member.lastIndexOf(':'))), Number(args[2]));
        }
      });
      fleet = await startFleet({
        prefix,
        redisUrl: privateRedis.url,
        workers: 3,
        env: { RESEND_RATE_LIMIT: `${LIMIT}/s`, LOCK_DURATION: '30s', STALLED_INTERVAL: '30s' },
        // The provider in a process of its own (sandbox-process.ts): it stamps each request
        // when it comes, not when this busy process gets to it.
        sandboxProcess: ['--rate-limit-per-second', `resend=${LIMIT}`],
      });
      const load = new Load({
        redisUrl: privateRedis.url,
        prefix,
        tasks: { follow_up_survey: { settings: { delay: 0 } } },
      });
      // About a third of synthetic conversations send an e-mail: 12 conversations a second
      // ask Resend for about 3.9 e-mails a second, 1.3 times its limit.
      const perSecond = 12;
      const conversations = Math.round((perSecond * loadMs) / 1_000);
      await load.run(
        { count: conversations, make: (index) => syntheticOutcome(index, { runId: prefix, now: Date.now() }) },
        perSecond,
      );
      await load.close();
      const emails = [...load.accepted.values()].filter((task) => task.type === 'send_email').length;
      // The backlog drains at the limit; then a margin.
      const accounting = await settle(client, fleet, load, (emails / LIMIT) * 1_000 + scale(60_000, 120_000));

      // The provider's view, through its HTTP API: windows of its own length (1 s), and 800 ms.
      const stats = async (windowMs: number) => {
        const response = await fetch(`${fleet!.sandbox.url}/_sandbox/stats?destination=resend&windowMs=${windowMs}`);
        expect(response.status).toBe(200);
        return ((await response.json()) as TrafficReport).destinations.resend!;
      };
      const resend = await stats(1_000);
      const resend800 = await stats(800);
      const spanSeconds = (Date.parse(resend.lastAt!) - Date.parse(resend.firstAt!)) / 1_000;
      // Achieved rate while e-mails waited: every second from the first to the last request had work waiting.
      const achieved = resend.ok / LIMIT / Math.max(1, spanSeconds);
      monitor.disconnect();
      const lines = fleet.workers.flatMap((worker) => worker.logs);
      const sent = await fleet.sandbox.deliveries({ provider: 'resend' });
      const way = grantToArrival(sent, grants);
      // Jobs that waited for Resend's limit or a 429 hold (of any type: reminders and surveys may go by e-mail too).
      const postponed = lines.filter(
        (line) => line.result === 'postponed' && /rate limit of resend|resend held/.test(String(line.error)),
      );
      const attempts = sent.map((delivery) => delivery.attempt ?? 1).filter((attempt) => attempt > 1).length;
      const details = {
        loadMs,
        limit: `${LIMIT}/s (sandbox fixed window; fleet RESEND_RATE_LIMIT=${LIMIT}/s)`,
        workers: 3,
        emails,
        resendRequests: resend.requests,
        resendOk: resend.ok,
        resend429: resend.rateLimited,
        overLimit: resend.overLimit,
        maxInAnySecondWindow: resend.sliding.maxRequests,
        maxInAny800msWindow: resend800.sliding.maxRequests,
        maxInAlignedSecond: resend.maxPerSecond.requests,
        spanSeconds,
        achievedOverConfigured: Number(achieved.toFixed(3)),
        postponedForRateLimit: postponed.length,
        secondsOverTheLimit: resend.seconds
          .filter((second) => second.requests > LIMIT)
          .map((second) => `${second.start.slice(11, 19)}: ${second.requests} (${second.rateLimited} answered 429)`),
        emailsDeliveredOnALaterAttempt: attempts,
        grantToArrivalMs: way.summary,
        windowsOverTheLimit: way.crowded,
      };
      report('8. Provider at its real limit', accounting, details);
      console.log(`provider limit: ${JSON.stringify(details)}`);

      expect(emails).toBeGreaterThan((LIMIT * loadMs) / 1_000);
      expect({
        invariant: invariantViolations(accounting),
        deadLettered: accounting.deadLettered,
        pending: accounting.pending,
        // From the provider's side: never more than the limit in any window of its length (judged at full size).
        withinLimitInEveryWindow: FULL ? resend.sliding.maxRequests <= LIMIT : 'reported',
        // Waiting for the limit used no attempt.
        emailsDeliveredOnALaterAttempt: attempts,
      }).toEqual({
        invariant: [],
        deadLettered: {},
        pending: 0,
        withinLimitInEveryWindow: FULL ? true : 'reported',
        emailsDeliveredOnALaterAttempt: 0,
      });
      // The work did wait (the load was above the limit).
      expect(postponed.length).toBeGreaterThan(0);
    },
    scale(240_000, 45 * 60_000),
  );
});

/**
 * For each request the provider accepted: when the fleet granted it (worker clock) and
 * when the provider stamped it. `crowded` lists every sliding second holding more than the
 * limit, with each request's grant and way, so a failure names where the time went.
 */
function grantToArrival(
  deliveries: { idempotencyKey: string | null; arrivedAt: string }[],
  grants: Map<string, number>,
) {
  const requests = deliveries
    .map((delivery) => {
      const arrived = Date.parse(delivery.arrivedAt);
      const granted = grants.get(delivery.idempotencyKey ?? '');
      return {
        key: delivery.idempotencyKey,
        arrived,
        granted,
        wayMs: granted === undefined ? undefined : arrived - granted,
      };
    })
    .sort((a, b) => a.arrived - b.arrived);
  const ways = requests
    .flatMap((request) => (request.wayMs === undefined ? [] : [request.wayMs]))
    .sort((a, b) => a - b);
  const at = (q: number) => ways[Math.min(ways.length - 1, Math.floor(q * ways.length))];
  const crowded: string[] = [];
  for (let k = 0, m = 0; k < requests.length; k++) {
    while (requests[k]!.arrived - requests[m]!.arrived >= 1_000) m++;
    if (k - m + 1 > LIMIT) {
      crowded.push(
        requests
          .slice(m, k + 1)
          .map(
            (r) =>
              `${new Date(r.arrived).toISOString().slice(11, 23)} granted ${r.granted === undefined ? '?' : new Date(r.granted).toISOString().slice(11, 23)} (+${r.wayMs ?? '?'} ms)`,
          )
          .join(', '),
      );
    }
  }
  return {
    summary: {
      matched: ways.length,
      of: requests.length,
      p50: at(0.5),
      p99: at(0.99),
      p999: at(0.999),
      max: ways.at(-1),
    },
    crowded,
  };
}
