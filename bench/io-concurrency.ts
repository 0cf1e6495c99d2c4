/**
 * I/O-bound concurrency: every delivery takes 100 ms (a receiver on loopback that answers
 * after 100 ms, in a process of its own). One aftercall worker process at concurrency 100
 * delivering update_crm through the real signed webhook (WEBHOOK_SECRET set, CRM_WEBHOOK_URL
 * pointing at the receiver) can at best finish 100 / 0.1 s = 1,000 jobs/s; goal: at least
 * 90 % of that. Raw BullMQ does the same with a processor that POSTs the job's data to the
 * same receiver with fetch, at the same concurrency.
 *
 * Rounds as in the throughput benchmark: pause, enqueue, resume, time until the last job
 * is finished; one warm-up round per side, the sides alternate. Private redis-server.
 */
import { cpus } from 'node:os';
import { deliveryCosts, type DeliveryCosts } from './cost-breakdown.js';
import {
  alternateRounds,
  cpuMedians,
  describeRedis,
  spread,
  startDelayServer,
  startSide,
  stopAll,
  withRedis,
  type Side,
} from './harness.js';
import {
  medianBreakdown,
  SEGMENTS,
  START_WAVES,
  type LatencyBreakdown,
  type Phases,
  type Segment,
} from './latency-breakdown.js';
import type { Benchmark, Entry, Goal, Spread } from './lib.js';
import { claim, CPU_BOUND, MACHINE_FULL, reasonParagraph, supported, type Claim } from './reasons.js';
import { fmt, measuredAt, num, pct, plural, range, us, verdict } from './report.js';

export const IO_CONCURRENCY = 100;
export const IO_LATENCY_MS = 100;
export const IO_CEILING = IO_CONCURRENCY / (IO_LATENCY_MS / 1000);

interface SideSummary {
  jobsPerSecond: Spread & { values: number[] };
  efficiency: number;
  cpu: {
    worker: number;
    redis: number | undefined;
    server: number | undefined;
    machine: number;
    allProcesses: number;
    workerMsPerJob: number;
    /** The worker's garbage collection pauses per job (ms) and collections per 1,000 jobs; absent in older results. */
    gcMsPerJob?: number;
    gcPerThousandJobs?: number;
  };
  /** Where one job's time went (latency-breakdown.ts): medians over rounds. */
  breakdown?: LatencyBreakdown;
}

export interface IoConcurrency {
  jobsPerRound: number;
  warmupJobs: number;
  concurrency: number;
  latencyMs: number;
  ceiling: number;
  redis: string;
  logDestination: 'file';
  ours: SideSummary;
  raw: SideSummary;
  ratio: number;
  /** CPU of the delivery path's pieces (cost-breakdown.ts). */
  delivery: DeliveryCosts;
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<IoConcurrency> {
  const jobs = quick ? 300 : 3_000;
  const warmup = quick ? 100 : 1_000;
  const rounds = quick ? 1 : 3;
  return withRedis(async (redis) => {
    const server = redis.stopLater(await startDelayServer(IO_LATENCY_MS));
    const sides = {} as Record<'ours' | 'raw', Side>;
    for (const side of ['ours', 'raw'] as const) {
      const prefix = redis.prefix(`io-${side}`);
      sides[side] = redis.stopLater(
        await startSide({
          side,
          url: redis.url,
          prefix,
          concurrency: IO_CONCURRENCY,
          port: 'webhook',
          webhookUrl: server.url,
          log: 'file',
          delayServer: server,
          timings: true,
        }),
      );
    }
    const results = await alternateRounds({ sides, warmup, jobs, rounds, label: 'io-concurrency' });
    // Stop the workers, then time the delivery path's pieces against the same receiver.
    await stopAll(Object.values(sides));
    const delivery = await deliveryCosts({ quick, url: server.url, concurrency: IO_CONCURRENCY });
    const cores = cpus().length;
    const summary = (side: 'ours' | 'raw'): SideSummary => {
      const jobsPerSecond = spread(results[side].map((r) => r.jobsPerSecond));
      const cpu = cpuMedians(results[side], cores);
      const rounds = results[side].flatMap((round) => (round.breakdown ? [round.breakdown] : []));
      return {
        ...(rounds.length && { breakdown: medianBreakdown(rounds) }),
        jobsPerSecond,
        efficiency: jobsPerSecond.median / IO_CEILING,
        cpu: {
          worker: cpu.workers,
          redis: cpu.redis,
          server: cpu.server,
          machine: cpu.machine,
          allProcesses: cpu.allProcesses,
          workerMsPerJob: cpu.workerMsPerJob,
          gcMsPerJob: cpu.gcMsPerJob,
          gcPerThousandJobs: cpu.gcPerThousandJobs,
        },
      };
    };
    const ours = summary('ours');
    const raw = summary('raw');
    return {
      jobsPerRound: jobs,
      warmupJobs: warmup,
      concurrency: IO_CONCURRENCY,
      latencyMs: IO_LATENCY_MS,
      ceiling: IO_CEILING,
      redis: describeRedis(redis),
      logDestination: 'file',
      ours,
      raw,
      ratio: ours.jobsPerSecond.median / raw.jobsPerSecond.median,
      delivery,
      goal: {
        metric: 'ours jobs/s / raw jobs/s (with ours >= 95 % of the ceiling and CPU per job <= raw)',
        limit: 1,
        judged: !quick,
        met: quick ? null : goalParts(ours, raw, ours.jobsPerSecond.median / raw.jobsPerSecond.median).every(Boolean),
      },
    };
  });
}

function report(io: Entry<IoConcurrency>): string[] {
  const d = io.delivery;
  const lines = [
    '## I/O-bound concurrency',
    '',
    ...measuredAt(io),
    `Every delivery takes ${io.latencyMs} ms: a receiver on loopback, in a process of its own, answers ${io.latencyMs} ms after reading the`,
    `request (it does not verify signatures). One worker process at concurrency ${io.concurrency} can finish at most`,
    `${num(io.ceiling)} jobs/s. aftercall delivers \`update_crm\` through the real signed webhook (\`WEBHOOK_SECRET\` set,`,
    "`CRM_WEBHOOK_URL` pointing at the receiver), logging at `info` to a file; raw BullMQ's processor POSTs the job's data to",
    `the same receiver with \`fetch\`. ${num(io.jobsPerRound)} jobs per round after a warm-up round of ${num(io.warmupJobs)}, ${plural(io.ours.jobsPerSecond.rounds, 'round')} per side,`,
    `alternating; on ${io.redis}.`,
    '',
    '| | aftercall | raw BullMQ | goal |',
    '|---|---|---|---|',
    `| jobs/s | ${range(io.ours.jobsPerSecond)} | ${range(io.raw.jobsPerSecond)} | |`,
    `| share of the ${num(io.ceiling)} jobs/s ceiling | ${pct(io.ours.efficiency, 1)} | ${pct(io.raw.efficiency, 1)} | ${part(io, 1, '≥ 95 %')} |`,
    `| worker process CPU per job (ms) | ${fmt(io.ours.cpu.workerMsPerJob, 3)} | ${fmt(io.raw.cpu.workerMsPerJob, 3)} | ${part(io, 2, '≤ raw')} |`,
    ...gcLines(io),
    `| worker process busy (share of one core) | ${pct(io.ours.cpu.worker)} | ${pct(io.raw.cpu.worker)} | |`,
    `| machine busy, all processes (share of all cores) | ${pct(io.ours.cpu.allProcesses)} | ${pct(io.raw.cpu.allProcesses)} | |`,
    '',
    `aftercall / raw BullMQ: ${fmt(io.ratio)} (${part(io, 0, 'goal ≥ 1.0')}); all three parts of the goal: ${verdict(io.goal, 'goal')}.`,
    '',
    ...breakdownLines(io),
  ];
  if (d) {
    lines.push(
      `The delivery path's pieces, timed alone against the same receiver at the same concurrency: Node's \`fetch\` costs`,
      `${fmt(d.fetchMsPerRequest, 3)} ms of CPU per request, \`node:http\` with a keep-alive agent ${fmt(d.nodeHttpMsPerRequest, 3)} ms. A bare loop of requests, no`,
      `queue and no Redis, reaches ${pct(d.fetchRequestsPerSecond / io.ceiling, 1)} of the ceiling with \`fetch\` and ${pct(d.nodeHttpRequestsPerSecond / io.ceiling, 1)} with \`node:http\`. Signing with the`,
      `\`standardwebhooks\` package's own \`sign\` ${us(d.signStandardWebhooks)} per request; aftercall's signer, the same signature through`,
      `\`node:crypto\`'s HMAC, ${us(d.signNodeCrypto)}. aftercall's webhook adapter sends with \`node:http\` and a keep-alive agent;`,
      'the raw BullMQ processor uses `fetch`.',
      '',
    );
  }
  if (io.goal.judged) lines.push(...reasonParagraph(io.goal.met ? 'Why met.' : 'Why missed.', ioReasons(io)));
  return lines;
}

/** The goal's three parts: ours >= raw jobs/s, >= 95 % of the ceiling, CPU per job <= raw's. */
function goalParts(ours: SideSummary, raw: SideSummary, ratio: number): [boolean, boolean, boolean] {
  return [ratio >= 1, ours.efficiency >= 0.95, ours.cpu.workerMsPerJob <= raw.cpu.workerMsPerJob];
}

function part(io: Entry<IoConcurrency>, index: 0 | 1 | 2, text: string): string {
  if (!io.goal.judged) return `${text}: not judged`;
  return `${text}: **${goalParts(io.ours, io.raw, io.ratio)[index] ? 'met' : 'missed'}**`;
}

/** The worker's garbage collection: pauses per job, and how long each held every slot. */
function gcLines(io: Pick<IoConcurrency, 'ours' | 'raw'>): string[] {
  const [o, r] = [io.ours.cpu, io.raw.cpu];
  if (o.gcMsPerJob === undefined || r.gcMsPerJob === undefined) return [];
  const each = (c: SideSummary['cpu']) =>
    `${fmt(c.gcPerThousandJobs, 1)} × ${fmt(c.gcMsPerJob! / (c.gcPerThousandJobs! / 1000), 2)} ms`;
  return [
    `| worker garbage collection pauses per job (µs) | ${fmt(o.gcMsPerJob * 1000, 1)} | ${fmt(r.gcMsPerJob * 1000, 1)} | |`,
    `| collections per 1,000 jobs × pause of each | ${each(o)} | ${each(r)} | |`,
  ];
}

/** The claims that explain the verdict, each tested against this run's figures (reasons.ts). */
export function ioReasons(io: Entry<IoConcurrency>): Claim[] {
  const o = io.ours;
  const r = io.raw;
  const busy = o.cpu.worker;
  const cpu = `worker busy ${pct(busy)} of a core`;
  const claims: Claim[] = [
    claim(
      `The worker process ran short of CPU: busy ${pct(busy)} of a core at ${fmt(o.cpu.workerMsPerJob, 2)} ms of CPU per job, and every millisecond its event loop is busy delays the next job of each of the ${io.concurrency} slots.`,
      busy >= CPU_BOUND,
      cpu,
    ),
    claim(
      `It is not the worker's CPU: the worker process was busy ${pct(busy)} of a core, at ${fmt(o.cpu.workerMsPerJob, 2)} ms of CPU per job against raw BullMQ's ${fmt(r.cpu.workerMsPerJob, 2)} ms.`,
      busy < CPU_BOUND,
      cpu,
    ),
  ];
  const bo = o.breakdown;
  const br = r.breakdown;
  if (bo && br) {
    const between = (b: LatencyBreakdown) => b.cycle - b.mean.receiver;
    const diffs = SEGMENTS.filter((s) => s !== 'receiver').map((s) => [s, bo.mean[s] - br.mean[s]] as const);
    const [worst, most] = diffs.reduce((a, b) => (b[1] > a[1] ? b : a));
    const [best, least] = diffs.reduce((a, b) => (b[1] < a[1] ? b : a));
    claims.push(
      claim(
        `One slot's cycle was ${fmt(bo.cycle, 1)} ms against raw BullMQ's ${fmt(br.cycle, 1)} ms: besides the receiver's ${fmt(bo.mean.receiver, 1)} ms, ${fmt(between(bo), 1)} ms per job went between one delivery and the next (raw BullMQ: ${fmt(between(br), 1)} ms).`,
        Number.isFinite(bo.cycle) && Number.isFinite(br.cycle),
        'the breakdown above',
      ),
      claim(
        `aftercall spent more than raw BullMQ on: ${SEGMENT_LABELS[worst]} (${fmt(most, 2)} ms more per job).`,
        most >= 0.05,
        `largest difference ${fmt(most, 2)} ms`,
      ),
      claim(
        `aftercall spent less than raw BullMQ on: ${SEGMENT_LABELS[best]} (${fmt(-least, 2)} ms less per job).`,
        least <= -0.05,
        `smallest difference ${fmt(least, 2)} ms`,
      ),
      claim(
        `${pct(0.95)} of the ceiling needs a cycle of at most ${fmt(io.latencyMs / 0.95, 1)} ms, so at most ${fmt(io.latencyMs / 0.95 - bo.mean.receiver, 1)} ms between deliveries besides the receiver's own lateness; aftercall's slots spent ${fmt(between(bo), 1)} ms: ${fmt(bo.mean.fetch + bo.mean.toFinish, 1)} ms from the handler's end through BullMQ's completing call and fetch to the next handler's start, ${fmt(bo.mean.toRequest, 1)} ms from the handler's start to the request, ${fmt(bo.mean.fromResponse, 1)} ms from the answer to the handler's end.`,
        bo.cycle > io.latencyMs / 0.95,
        `cycle ${fmt(bo.cycle, 1)} ms`,
      ),
      ...phaseClaims(io, bo.phases, br.phases),
      claim(
        `Redis script calls per job: ${fmt(bo.scriptCallsPerJob, 2)} against raw BullMQ's ${fmt(br.scriptCallsPerJob, 2)}: the question to the destination's policy is asked about once per 100 ms per process, not before every delivery.`,
        bo.scriptCallsPerJob <= br.scriptCallsPerJob + 0.2,
        `script calls per job ${fmt(bo.scriptCallsPerJob, 2)} vs ${fmt(br.scriptCallsPerJob, 2)}`,
      ),
      claim(
        `Redis script calls per job: ${fmt(bo.scriptCallsPerJob, 2)} against raw BullMQ's ${fmt(br.scriptCallsPerJob, 2)}: each extra round trip waits for Redis and then for the worker's turn on a core.`,
        bo.scriptCallsPerJob > br.scriptCallsPerJob + 0.2,
        `script calls per job ${fmt(bo.scriptCallsPerJob, 2)} vs ${fmt(br.scriptCallsPerJob, 2)}`,
      ),
    );
  }
  const [gcOurs, gcRaw] = [o.cpu.gcMsPerJob, r.cpu.gcMsPerJob];
  if (gcOurs !== undefined && gcRaw !== undefined) {
    claims.push(
      claim(
        `Garbage collection stopped the worker ${fmt(gcOurs * 1000, 1)} µs per job (raw BullMQ: ${fmt(gcRaw * 1000, 1)} µs), and a pause holds all ${io.concurrency} slots at once: ${fmt(gcOurs * io.concurrency, 2)} ms of each slot's cycle (raw BullMQ: ${fmt(gcRaw * io.concurrency, 2)} ms).`,
        Number.isFinite(gcOurs) && Number.isFinite(gcRaw),
        'GC pauses measured',
      ),
    );
  }
  const machine = o.cpu.allProcesses;
  claims.push(
    claim(
      `The machine was full: all processes on it, other engineers' included, kept its cores ${pct(machine)} busy, so every wait for Redis, the receiver or a timer includes a wait for a core.`,
      machine >= MACHINE_FULL,
      `machine busy ${pct(machine)}`,
    ),
    claim(
      `The machine had cores to spare (${pct(machine)} busy).`,
      machine < MACHINE_FULL,
      `machine busy ${pct(machine)}`,
    ),
    claim(
      `Raw BullMQ with \`fetch\` reached ${pct(r.efficiency, 1)} of the ceiling.`,
      Number.isFinite(r.efficiency),
      'raw share of the ceiling',
    ),
  );
  return supported(claims);
}

/**
 * The round's start against the rest: the jobs a round starts with are fetched one by one and
 * started together (latency-breakdown.ts), and what that costs is told apart from the pace after.
 */
function phaseClaims(io: Entry<IoConcurrency>, ours: Phases | undefined, raw: Phases | undefined): Claim[] {
  if (!ours || !raw) return [];
  const allowed = io.latencyMs / 0.95;
  const share = (cycle: number) => (io.concurrency * 1000) / cycle / io.ceiling;
  return [
    claim(
      `A round starts with all its jobs waiting: BullMQ's worker fetches its first ${num(ours.wave)} jobs one by one before it starts any, and they run together. Over the round's first ${START_WAVES} waves (its first ${num(ours.startJobs)} jobs) a slot's cycle averaged ${fmt(ours.startCycle, 1)} ms (raw BullMQ: ${fmt(raw.startCycle, 1)} ms); over the ${num(ours.restJobs)} jobs after them, ${fmt(ours.restCycle, 1)} ms (raw BullMQ: ${fmt(raw.restCycle, 1)} ms), a pace of ${pct(share(ours.restCycle), 1)} of the ceiling (raw BullMQ: ${pct(share(raw.restCycle), 1)}).`,
      ours.startCycle > ours.restCycle && raw.startCycle > raw.restCycle,
      `start ${fmt(ours.startCycle, 1)} ms, rest ${fmt(ours.restCycle, 1)} ms`,
    ),
    claim(
      `After the round's start too, aftercall's slots took longer than the ${fmt(allowed, 1)} ms 95 % allows (${fmt(ours.restCycle, 1)} ms): the start is not the whole of the gap.`,
      ours.restCycle > allowed,
      `rest cycle ${fmt(ours.restCycle, 1)} ms vs ${fmt(allowed, 1)} ms`,
    ),
    claim(
      `After the round's start, aftercall's slots kept the pace 95 % needs (${fmt(ours.restCycle, 1)} ms against at most ${fmt(allowed, 1)} ms): the round's start made the difference.`,
      ours.restCycle <= allowed,
      `rest cycle ${fmt(ours.restCycle, 1)} ms vs ${fmt(allowed, 1)} ms`,
    ),
  ];
}

const SEGMENT_LABELS: Record<Segment, string> = {
  fetch: 'job moved to active (BullMQ `processedOn`) → handler start',
  toRequest: 'handler start → request read by the receiver',
  receiver: 'receiver: request read → answer written',
  fromResponse: 'answer written → handler end',
  toFinish: 'handler end → completing call (`finishedOn`), which fetches the next job',
};

/** The latency breakdown table: one job's time by segment, both sides, from the same rounds. */
export function breakdownLines(io: Pick<IoConcurrency, 'ours' | 'raw' | 'concurrency'>): string[] {
  const ours = io.ours.breakdown;
  const raw = io.raw.breakdown;
  if (!ours || !raw) return [];
  return [
    `Where one job's time goes (mean ms per job, medians over rounds; p99 in brackets). Timestamps are kept in memory`,
    "during a round (the handler's start and end in the worker, the receiver's read and answer by the request's",
    "`idempotency-key`, BullMQ's `processedOn` and `finishedOn` read from the job hashes afterwards) and put together",
    `after it. A slot's cycle is the sum; ${io.concurrency} slots / cycle is the throughput they allow.`,
    '',
    '| segment | aftercall (ms) | raw BullMQ (ms) | difference (ms) |',
    '|---|---|---|---|',
    ...SEGMENTS.map(
      (s) =>
        `| ${SEGMENT_LABELS[s]} | ${fmt(ours.mean[s], 2)} (${fmt(ours.p99[s], 1)}) | ${fmt(raw.mean[s], 2)} (${fmt(raw.p99[s], 1)}) | ${fmt(ours.mean[s] - raw.mean[s], 2)} |`,
    ),
    `| cycle of one slot | ${fmt(ours.cycle, 2)} | ${fmt(raw.cycle, 2)} | ${fmt(ours.cycle - raw.cycle, 2)} |`,
    ...phaseLines(ours.phases, raw.phases),
    `| jobs/s the slots allow (${io.concurrency} / cycle) | ${num((io.concurrency * 1000) / ours.cycle)} | ${num((io.concurrency * 1000) / raw.cycle)} | |`,
    `| Redis script calls per job (\`INFO commandstats\`) | ${fmt(ours.scriptCallsPerJob, 2)} | ${fmt(raw.scriptCallsPerJob, 2)} | |`,
    '',
  ];
}

/** The breakdown table's rows for the round's start and the rest (latency-breakdown.ts phases). */
function phaseLines(ours: Phases | undefined, raw: Phases | undefined): string[] {
  if (!ours || !raw) return [];
  return [
    `| cycle of one slot, the round's first ${START_WAVES} waves (its first ${num(ours.startJobs)} jobs; raw BullMQ ${num(raw.startJobs)}) | ${fmt(ours.startCycle, 2)} | ${fmt(raw.startCycle, 2)} | ${fmt(ours.startCycle - raw.startCycle, 2)} |`,
    `| cycle of one slot, the jobs after them | ${fmt(ours.restCycle, 2)} | ${fmt(raw.restCycle, 2)} | ${fmt(ours.restCycle - raw.restCycle, 2)} |`,
  ];
}

export const ioConcurrency: Benchmark<IoConcurrency> = {
  name: 'io-concurrency',
  figures: [
    'ours.jobsPerSecond.median',
    'raw.jobsPerSecond.median',
    'ours.efficiency',
    'ratio',
    'delivery.fetchMsPerRequest',
    'delivery.fetchRequestsPerSecond',
  ],
  run,
  report,
};
