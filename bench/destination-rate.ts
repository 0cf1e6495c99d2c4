/**
 * Destination rate limit: how close the fleet comes to a destination's configured limit
 * while work waits for it, and whether the destination ever sees more than the limit.
 *
 * A backlog of update_crm tasks (the queue paused while they are enqueued, then resumed)
 * goes to a webhook whose limit is configured (CRM_WEBHOOK_RATE_LIMIT), served by 1 and
 * by 3 worker processes (concurrency 50 each) sharing the limit through Redis. The receiver
 * is a plain node:http server in this process that answers 200 at once and keeps the
 * arrival time of every request: the destination's view, not the fleet's account.
 *
 *   achieved / configured  the steady rate at the destination over the limit: arrivals from
 *                          one second after the first to one second before the last, per
 *                          second of that interval, over L. The first and last seconds are
 *                          left out: a limiter that sends L at once at the start (or the end)
 *                          would otherwise count a burst as rate, and one that spaces its
 *                          sends evenly would be charged for not bursting.
 *                          Goal >= 0.95 (the limiter keeps a margin of 3 % of the window).
 *   max in any window      the most arrivals in any interval of one second, wherever it
 *                          starts (sliding, over the arrival times): never above L.
 *
 * Each run starts with a warm-up of L tasks (scripts loaded, connections made), then a pause
 * longer than the window, so the figures are the steady state of a running fleet.
 *
 * RATE_DEBUG=1 logs each run's arrival times (ms after the first), to see where they bunch.
 *
 * Timings on a shared machine vary: the machine's load average is recorded before and after
 * each run, and the report says when the machine was loaded (load above its core count).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { log, sleep, startSide, withRedis } from './harness.js';
import type { Benchmark, Entry, Goal } from './lib.js';
import { fmt, measuredAt, num, verdict } from './report.js';

/** A local receiver that answers 200 at once and keeps when each request arrived. */
export interface ArrivalCounter {
  url: string;
  /** Arrival times (epoch ms, sub-millisecond) since the last reset. */
  arrivals: number[];
  reset(): void;
  close(): Promise<void>;
}

export async function startArrivalCounter(): Promise<ArrivalCounter> {
  const arrivals: number[] = [];
  const server: Server = createServer((request, response) => {
    arrivals.push(performance.timeOrigin + performance.now());
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
      response.end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/crm`,
    arrivals,
    reset: () => {
      arrivals.length = 0;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The most arrivals in any half-open interval of `windowMs`. */
export function maxInWindow(arrivals: readonly number[], windowMs: number): number {
  const times = [...arrivals].sort((a, b) => a - b);
  let most = 0;
  for (let last = 0, first = 0; last < times.length; last += 1) {
    while (times[last]! - times[first]! >= windowMs) first += 1;
    most = Math.max(most, last - first + 1);
  }
  return most;
}

/** Arrivals per second from one second after the first to one second before the last. */
export function steadyRate(sorted: readonly number[]): number {
  const from = sorted[0]! + 1_000;
  const to = sorted.at(-1)! - 1_000;
  if (to <= from) return Number.NaN;
  return sorted.filter((t) => t >= from && t < to).length / ((to - from) / 1_000);
}

interface RateRun {
  processes: number;
  tasks: number;
  arrivals: number;
  spanSeconds: number;
  achievedOverConfigured: number;
  maxInAnySecond: number;
  loadAverage: { before: number; after: number };
}

export interface DestinationRate {
  limitPerSecond: number;
  concurrency: number;
  cores: number;
  runs: RateRun[];
  worstAchieved: number;
  worstMax: number;
  goal: Goal;
}

const CONCURRENCY = 50;
const load1 = () => Number(loadavg()[0]!.toFixed(2));

async function run({ quick }: { quick: boolean }): Promise<DestinationRate> {
  const limit = quick ? 20 : 50;
  const tasks = quick ? limit * 3 : limit * 20;
  const runs: RateRun[] = [];
  for (const processes of [1, 3]) {
    const counter = await startArrivalCounter();
    try {
      await withRedis(async (redis) => {
        const side = redis.stopLater(
          await startSide({
            side: 'ours',
            url: redis.url,
            prefix: redis.prefix(`rate-${processes}`),
            processes,
            concurrency: CONCURRENCY,
            port: 'webhook',
            webhookUrl: counter.url,
            log: 'null',
            redisCpu: false,
            env: { CRM_WEBHOOK_RATE_LIMIT: `${limit}/s` },
          }),
        );
        // Warm-up: every script loaded, every connection to Redis and the receiver made (a
        // cold process's first requests reach the receiver late and bunch with the next
        // second's); then a pause of more than the window, so the measured run starts empty.
        await side.run(limit, { timeoutMs: 120_000, pollMs: 100 });
        await sleep(2_000);
        const before = load1();
        counter.reset();
        await side.run(tasks, { timeoutMs: (tasks / limit) * 1_000 * 4 + 60_000, pollMs: 100 });
        const after = load1();
        const times = [...counter.arrivals].sort((a, b) => a - b);
        const spanSeconds = (times.at(-1)! - times[0]!) / 1_000;
        const result: RateRun = {
          processes,
          tasks,
          arrivals: times.length,
          spanSeconds,
          achievedOverConfigured: steadyRate(times) / limit,
          maxInAnySecond: maxInWindow(times, 1_000),
          loadAverage: { before, after },
        };
        runs.push(result);
        if (process.env.RATE_DEBUG)
          log(`arrivals (ms from first): ${times.map((t) => Math.round(t - times[0]!)).join(' ')}`);
        log(
          `destination-rate ${processes} process(es): ${times.length} arrivals in ${spanSeconds.toFixed(2)} s, achieved ${result.achievedOverConfigured.toFixed(3)} of ${limit}/s, at most ${result.maxInAnySecond} in any second (load ${before} -> ${after})`,
        );
      });
    } finally {
      await counter.close();
    }
  }
  const worstAchieved = Math.min(...runs.map((r) => r.achievedOverConfigured));
  const worstMax = Math.max(...runs.map((r) => r.maxInAnySecond));
  return {
    limitPerSecond: limit,
    concurrency: CONCURRENCY,
    cores: cpus().length,
    runs,
    worstAchieved,
    worstMax,
    goal: {
      metric: 'achieved / configured rate (worst of 1 and 3 processes), never above the limit in any second',
      limit: 0.95,
      judged: !quick,
      met: quick ? null : worstAchieved >= 0.95 && worstMax <= limit,
    },
  };
}

function report(c: Entry<DestinationRate>): string[] {
  const loaded = (r: RateRun) => Math.max(r.loadAverage.before, r.loadAverage.after) > c.cores;
  return [
    '## Destination rate limit',
    '',
    ...measuredAt(c),
    `A backlog of ${num(c.runs[0]?.tasks ?? 0)} update_crm tasks goes to a webhook limited to ${c.limitPerSecond} requests per second`,
    '(`CRM_WEBHOOK_RATE_LIMIT`), served by 1 and by 3 worker processes (concurrency ' +
      `${c.concurrency} each) that share the limit through Redis.`,
    'The receiver, a plain HTTP server answering 200 at once, keeps the arrival time of every request. **Achieved /',
    'configured**: the arrivals per second from one second after the first to one second before the last, over the limit',
    'L (the edges are left out, so a burst at the start counts neither for nor against). **Max in any second**: the most',
    'arrivals in any interval of one second, wherever it starts.',
    '',
    '| processes | arrivals | span (s) | achieved / configured | max in any second | load average (1 min) |',
    '|---|---|---|---|---|---|',
    ...c.runs.map(
      (r) =>
        `| ${r.processes} | ${num(r.arrivals)} | ${fmt(r.spanSeconds)} | ${fmt(r.achievedOverConfigured, 3)} | ${r.maxInAnySecond} of ${c.limitPerSecond} | ${fmt(r.loadAverage.before)} → ${fmt(r.loadAverage.after)}${loaded(r) ? ` (loaded: ${c.cores} cores)` : ''} |`,
    ),
    '',
    `Worst achieved ${fmt(c.worstAchieved, 3)}, most in any second ${c.worstMax} (${verdict(c.goal, `goal ≥ 0.95 and ≤ ${c.limitPerSecond}`)}).`,
    'The limiter grants a request while fewer than L grants fall within the last second plus a margin of 3 % (30 ms), and',
    'fewer than L/10 within the last 100 ms, so a steady backlog runs at about 0.97 of the limit, in groups of L/10 (a',
    "slot up to 100 ms away is waited for in the worker, not through BullMQ's delayed set, which would bring the job back",
    'late and leave the slot unused). The',
    'spreading keeps a process from sending the whole limit as one burst, whose last requests would leave it tens of',
    'milliseconds after its first; the margin absorbs the rest of the time from grant to arrival. On a loaded machine that',
    'time can exceed the margin (a worker waiting for CPU between its grant and its request), which shows here as more',
    'than L in some second.',
    '',
  ];
}

export const destinationRate: Benchmark<DestinationRate> = {
  name: 'destination-rate',
  figures: ['runs.0.achievedOverConfigured', 'runs.1.achievedOverConfigured', 'runs.0.maxInAnySecond', 'worstMax'],
  run,
  report,
};
