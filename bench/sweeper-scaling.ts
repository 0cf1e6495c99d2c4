/**
 * Sweeper scaling: the time of one sweep that dead-letters 1,000 expired jobs, among
 * 10,000 / 100,000 (/ 1,000,000) live jobs. Its cost must follow the expired jobs, not
 * the backlog. Also counts Redis calls that blocked for more than 10 ms (SLOWLOG). On the
 * Redis at REDIS_URL.
 *
 * Layouts:
 *   waiting-oldest  expired jobs are the oldest waiting jobs (a FIFO queue whose tasks
 *                   share one expiry offset: the usual case)
 *   delayed         expired jobs are delayed jobs (reminders, retries) among delayed ones
 *   waiting-random  expired jobs spread at random through the waiting backlog (only
 *                   possible when expiry offsets vary within one type); the worst case:
 *                   the sweep only takes those within reach of the consuming end and
 *                   leaves the rest to the workers' check at pickup
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { DEFAULT_SWEEP_BATCH_SIZE } from '../src/config/defaults.js';
import { sweepExpiredJobs } from '../src/index.js';
import { redis, removePrefix } from '../test/helpers/redis.js';
import { acrossRounds, log, type Benchmark, type Goal, type Spread } from './lib.js';
import { fmt, measuredAt, num, range, verdict } from './report.js';

const TYPE = 'update_crm';
const LAYOUTS = ['waiting-oldest', 'delayed', 'waiting-random'] as const;
type Layout = (typeof LAYOUTS)[number];
/** The key a slow script call ran on (EVALSHA sha numkeys key ...), to tell whose call it was. */
const scriptOf = (argv: unknown) =>
  Array.isArray(argv) && /^eval/i.test(String(argv[0])) ? String(argv[3] ?? '') : undefined;
const CHUNK = 2_000;

async function build(
  client: Redis,
  prefix: string,
  { live, expired, layout, now }: { live: number; expired: number; layout: Layout; now: number },
) {
  const queue = new Queue(`{${TYPE}}`, { connection: client, prefix });
  const base = `${prefix}:{${TYPE}}:`;
  const total = live + expired;
  // positions of the expired jobs in insertion order (insertion order = age)
  const expiredAt = new Set<number>();
  if (layout === 'waiting-random') {
    while (expiredAt.size < expired) expiredAt.add(Math.floor(Math.random() * total));
  } else {
    for (let i = 0; i < expired; i += 1) expiredAt.add(i); // the oldest
  }
  for (let start = 0; start < total; start += CHUNK) {
    const jobs = [];
    const index: (number | string)[] = [];
    for (let i = start; i < Math.min(total, start + CHUNK); i += 1) {
      const isExpired = expiredAt.has(i);
      const jobId = `bench-${i}%3A${TYPE}`;
      const expiresAt = isExpired ? now - 1_000 : now + 3_600_000;
      jobs.push({
        name: TYPE,
        data: {
          type: TYPE,
          conversationId: `bench-${i}`,
          idempotencyKey: `bench-${i}:${TYPE}`,
          createdAt: now,
          runAt: now,
          expiresAt,
          payload: { n: i },
        },
        opts: { jobId, timestamp: now, ...(layout === 'delayed' && { delay: 3_600_000 }), removeOnFail: false },
      });
      index.push(expiresAt, jobId);
    }
    await queue.addBulk(jobs);
    await client.zadd(`${base}expiry`, ...index);
  }
  await queue.close();
}

interface Row {
  layout: Layout;
  live: number;
  expired: number;
  deadLettered: number;
  ms: Spread;
  redisCallsPerSweep: number;
  callsOver10ms: number;
  slowestCalls?: { ms: number; command: string; key: string | undefined }[];
}

export interface SweeperScaling {
  batchSize: number;
  rows: Row[];
  ratios: Record<string, number>;
  smallest: number;
  largest: number;
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<SweeperScaling> {
  const sizes = quick ? [1_000, 5_000] : [10_000, 100_000, 1_000_000];
  const expired = quick ? 200 : 1_000;
  const client = redis();
  const [, slowlogThreshold] = (await client.config('GET', 'slowlog-log-slower-than')) as [string, string];
  // SLOWLOG keeps every call over 1 ms: the slowest call is reported, those over 10 ms are counted.
  await client.config('SET', 'slowlog-log-slower-than', '1000');
  const results: Row[] = [];
  // Load the scripts on the connection first, so no round pays for compiling them.
  await sweepExpiredJobs(client, { prefix: `bench-sweep-warmup-${process.pid}`, types: [TYPE] });
  try {
    for (const layout of LAYOUTS) {
      for (const live of sizes) {
        // 1,000,000-job rounds take minutes to build: fewer rounds there.
        const rounds = quick ? 1 : live >= 1_000_000 ? 2 : 5;
        if (layout === 'waiting-random' && live >= 1_000_000) continue; // the worst case is clear by 100,000
        const times: number[] = [];
        let slowCalls = 0;
        const slowest: NonNullable<Row['slowestCalls']> = [];
        let calls = 0;
        let swept = 0;
        for (let round = 0; round < rounds; round += 1) {
          const prefix = `bench-sweep-${process.pid}-${round}`;
          const now = Date.now();
          await build(client, prefix, { live, expired, layout, now });
          await client.slowlog('RESET');
          const result = await sweepExpiredJobs(client, {
            prefix,
            now,
            batchSize: DEFAULT_SWEEP_BATCH_SIZE,
            types: [TYPE],
          });
          // each entry: [id, timestamp, microseconds, [command, args...], ...]
          const slow = (await client.slowlog('GET', 1024)) as [number, number, number, unknown[]][];
          slowCalls += slow.filter((entry) => Number(entry[2]) > 10_000).length;
          for (const entry of slow)
            slowest.push({
              ms: Number(entry[2]) / 1000,
              command: String(entry[3]?.[0] ?? '?'),
              key: scriptOf(entry[3]),
            });
          calls += result.calls;
          const deadLettered = result.expired[TYPE] ?? 0;
          if (layout !== 'waiting-random' && deadLettered !== expired)
            throw new Error(`sweep dead-lettered ${deadLettered} of ${expired}`);
          swept += deadLettered;
          times.push(result.durationMs);
          await removePrefix(client, prefix);
        }
        results.push({
          layout,
          live,
          expired,
          deadLettered: swept / rounds,
          ms: acrossRounds(times),
          redisCallsPerSweep: calls / rounds,
          callsOver10ms: slowCalls,
          slowestCalls: slowest.sort((a, b) => b.ms - a.ms).slice(0, 5),
        });
        log(`sweeper ${layout} ${live}: ${acrossRounds(times).median.toFixed(1)} ms`);
      }
    }
  } finally {
    await client.config('SET', 'slowlog-log-slower-than', String(slowlogThreshold));
    client.disconnect();
  }
  const at = (layout: Layout, live: number) =>
    results.find((row) => row.layout === layout && row.live === live)?.ms.median ?? Number.NaN;
  const small = sizes[0]!;
  const large = sizes.at(-1)!;
  const ratios = Object.fromEntries(
    (['waiting-oldest', 'delayed'] as const).map((layout) => [layout, at(layout, large) / at(layout, small)]),
  );
  const met =
    Object.values(ratios).every((ratio) => ratio <= 1.5) &&
    results.filter((row) => row.layout !== 'waiting-random').every((row) => row.callsOver10ms === 0);
  return {
    batchSize: DEFAULT_SWEEP_BATCH_SIZE,
    rows: results,
    ratios,
    smallest: small,
    largest: large,
    goal: { metric: `time at ${large} / time at ${small}`, limit: 1.5, met },
  };
}

export const sweeperScaling: Benchmark<SweeperScaling> = {
  name: 'sweeper-scaling',
  figures: ['batchSize', 'rows.0.ms.median', 'rows.0.redisCallsPerSweep', 'ratios.waiting-oldest', 'ratios.delayed'],
  run,
  report: (s) => [
    '## Sweeper scaling',
    '',
    ...measuredAt(s),
    `One sweep that dead-letters the expired jobs among a live backlog of one type (batches of ${s.batchSize} per Redis call, the default).`,
    '`calls > 10 ms` counts the Redis calls SLOWLOG saw above 10 ms during the sweeps, over all rounds; `slowest call` is the',
    'longest call it saw (it keeps those over 1 ms).',
    '',
    '| layout | live jobs | expired | dead-lettered by the sweep | sweep (ms) | Redis calls | calls > 10 ms | slowest call (ms) |',
    '|---|---|---|---|---|---|---|---|',
    ...s.rows.map(
      (row) =>
        `| ${row.layout} | ${num(row.live)} | ${num(row.expired)} | ${num(row.deadLettered)} | ${range(row.ms, 1)} | ${row.redisCallsPerSweep} | ${row.callsOver10ms} | ${row.slowestCalls === undefined ? 'n/a' : row.slowestCalls.length ? fmt(row.slowestCalls[0]!.ms, 1) : '< 1'} |`,
    ),
    '',
    `Ratio of the sweep at ${num(s.largest)} to the sweep at ${num(s.smallest)} live jobs: ` +
      Object.entries(s.ratios)
        .map(([layout, ratio]) => `${layout} ${fmt(ratio)}`)
        .join(', ') +
      ` (${verdict(s.goal, 'goal ≤ 1.5, and no call over 10 ms outside waiting-random')}).`,
    '',
    '`waiting-random` is the worst case and has no goal: an expired waiting job is searched for from the consuming',
    'end of the wait list, at most 1,000 entries deep, so no call blocks Redis for long; expired jobs deeper in the',
    'backlog are left to the workers, which dead-letter them at pickup without calling the provider, and to later',
    'sweeps. In a queue whose tasks share one expiry offset (every type but route_callback with `notAfter`), the',
    'expired jobs are the oldest, at the consuming end.',
    '',
  ],
};
