/**
 * Horizontal scaling: the I/O-bound load of io-concurrency (deliveries through the signed
 * webhook to a receiver that answers after 100 ms, concurrency 100 per process) served by
 * 1, 2 and 4 aftercall worker processes (child processes, METRICS_PORT=0 each), and by as
 * many raw BullMQ processes (fetch to the same receiver) for comparison. Each process
 * count gets its own fresh processes, one warm-up round and timed rounds of
 * (jobs per process x processes) jobs. Goal: 2 processes >= 1.8 x one.
 *
 * CPU: each worker's process.cpuUsage, Redis' used_cpu (INFO cpu, a private
 * redis-server), the receiver's and the harness's, and the whole machine's busy time
 * (/proc/stat, other users of the machine included), over each timed round.
 */
import { cpus } from 'node:os';
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
import { IO_CEILING, IO_CONCURRENCY, IO_LATENCY_MS } from './io-concurrency.js';
import type { Benchmark, Entry, Goal, Spread } from './lib.js';
import { claim, MACHINE_FULL, reasonParagraph, supported, type Claim } from './reasons.js';
import { fmt, measuredAt, num, pct, range, verdict } from './report.js';

interface Row {
  side: 'ours' | 'raw';
  processes: number;
  jobsPerRound: number;
  jobsPerSecond: Spread & { values: number[] };
  ceiling: number;
  /** How evenly the processes shared the work (smallest share / largest share). */
  balance: number;
  cpu: {
    workers: number;
    perWorker: number;
    redis: number | undefined;
    server: number | undefined;
    harness: number;
    ours: number;
    allProcesses: number;
    workerMsPerJob: number;
  };
  /** Jobs/s against one process of the same side. */
  speedup?: number;
}

export interface HorizontalScaling {
  cores: number;
  concurrencyPerProcess: number;
  jobsPerProcess: number;
  warmupPerProcess: number;
  latencyMs: number;
  redis: string;
  counts: number[];
  rows: Row[];
  speedup2: number;
  speedup4: number | undefined;
  rawSpeedup2: number;
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<HorizontalScaling> {
  // A quick run only checks that the machinery works: 1 and 2 processes, small rounds.
  const counts = quick ? [1, 2] : [1, 2, 3, 4];
  const perProcess = quick ? 100 : 2_000;
  const warmupPerProcess = quick ? 50 : 500;
  const rounds = quick ? 1 : 3;
  const cores = cpus().length;
  return withRedis(async (redis) => {
    const server = redis.stopLater(await startDelayServer(IO_LATENCY_MS));
    const rows: Row[] = [];
    // Per count, both sides' processes are started, and their rounds alternate (alternateRounds),
    // so that the machine's load, shared with others, weighs on both alike.
    for (const processes of counts) {
      const groups = {} as Record<'ours' | 'raw', Side>;
      try {
        for (const side of ['ours', 'raw'] as const) {
          groups[side] = await startSide({
            side,
            url: redis.url,
            prefix: redis.prefix(`hs-${side}-${processes}`),
            processes,
            concurrency: IO_CONCURRENCY,
            port: 'webhook',
            webhookUrl: server.url,
            log: 'file',
            delayServer: server,
          });
        }
        const results = await alternateRounds({
          sides: groups,
          warmup: warmupPerProcess * processes,
          jobs: perProcess * processes,
          rounds,
          label: `horizontal-scaling ${processes} process(es)`,
        });
        for (const side of ['ours', 'raw'] as const) {
          const cpu = cpuMedians(results[side], cores);
          rows.push({
            side,
            processes,
            jobsPerRound: perProcess * processes,
            jobsPerSecond: spread(results[side].map((r) => r.jobsPerSecond)),
            ceiling: IO_CEILING * processes,
            balance: spread(results[side].map((r) => Math.min(...r.perWorker) / Math.max(...r.perWorker))).median,
            cpu: {
              workers: cpu.workers,
              perWorker: cpu.perWorker,
              redis: cpu.redis,
              server: cpu.server,
              harness: cpu.harness,
              ours: cpu.machine,
              allProcesses: cpu.allProcesses,
              workerMsPerJob: cpu.workerMsPerJob,
            },
          });
        }
      } finally {
        await stopAll(Object.values(groups));
      }
    }
    const at = (side: 'ours' | 'raw', processes: number) =>
      rows.find((row) => row.side === side && row.processes === processes)?.jobsPerSecond.median ?? Number.NaN;
    for (const row of rows) row.speedup = row.jobsPerSecond.median / at(row.side, 1);
    const speedup2 = at('ours', 2) / at('ours', 1);
    return {
      cores,
      concurrencyPerProcess: IO_CONCURRENCY,
      jobsPerProcess: perProcess,
      warmupPerProcess,
      latencyMs: IO_LATENCY_MS,
      redis: describeRedis(redis),
      counts,
      rows,
      speedup2,
      speedup4: counts.includes(4) ? at('ours', 4) / at('ours', 1) : undefined,
      rawSpeedup2: at('raw', 2) / at('raw', 1),
      goal: {
        metric: 'jobs/s with 2 processes / with 1',
        limit: 1.8,
        judged: !quick,
        met: quick ? null : speedup2 >= 1.8,
      },
    };
  });
}

function report(h: Entry<HorizontalScaling>): string[] {
  const at = (side: 'ours' | 'raw', processes: number) =>
    h.rows.find((row) => row.side === side && row.processes === processes);
  const counts = [...new Set(h.rows.map((row) => row.processes))];
  const lines = [
    '## Horizontal scaling',
    '',
    ...measuredAt(h),
    `The I/O-bound load of the previous section (${h.latencyMs} ms deliveries, concurrency ${h.concurrencyPerProcess} per process) served by ${h.counts.join(', ')}`,
    "worker processes (child processes, `METRICS_PORT=0`), aftercall's and, for comparison, raw BullMQ's; fresh processes",
    `for each count, a warm-up round, then rounds of ${num(h.jobsPerProcess)} jobs per process. CPU is shown in cores (1.00 = one core busy`,
    `for the whole round): the workers' \`process.cpuUsage\`, Redis' \`used_cpu\`, the receiver's; "machine" is the busy share of all`,
    `${h.cores} cores from \`/proc/stat\`, other processes on the machine included.`,
    '',
    '| processes | aftercall jobs/s | × one | raw BullMQ jobs/s | × one | aftercall / raw | ceiling | aftercall workers (cores) | Redis (cores) | receiver (cores) | machine busy |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...counts.map((processes) => {
      const ours = at('ours', processes);
      const raw = at('raw', processes);
      const ratio = (ours?.jobsPerSecond.median ?? Number.NaN) / (raw?.jobsPerSecond.median ?? Number.NaN);
      return `| ${processes} | ${range(ours?.jobsPerSecond)} | ${fmt(ours?.speedup)} | ${range(raw?.jobsPerSecond)} | ${fmt(raw?.speedup)} | ${fmt(ratio)} | ${num(ours?.ceiling)} | ${fmt(ours?.cpu.workers)} | ${fmt(ours?.cpu.redis)} | ${fmt(ours?.cpu.server)} | ${pct(ours?.cpu.allProcesses)} |`;
    }),
    '',
    `Two processes against one: ${fmt(h.speedup2)}× (${verdict(h.goal, 'goal ≥ 1.8')}); raw BullMQ ${fmt(h.rawSpeedup2)}×.${Number.isFinite(h.speedup4) ? ` Four: ${fmt(h.speedup4)}×.` : ''}`,
    '',
  ];
  const three = at('ours', 3);
  const rawThree = at('raw', 3);
  if (three && rawThree) {
    lines.push(
      `Three processes at concurrency ${h.concurrencyPerProcess} each (ceiling ${num(three.ceiling)} jobs/s): aftercall ${num(three.jobsPerSecond.median)} jobs/s, ${pct(three.jobsPerSecond.median / three.ceiling)} of the`,
      `ceiling; raw BullMQ ${num(rawThree.jobsPerSecond.median)}, ${pct(rawThree.jobsPerSecond.median / rawThree.ceiling)}; aftercall / raw ${fmt(three.jobsPerSecond.median / rawThree.jobsPerSecond.median)}, the machine ${pct(three.cpu.allProcesses)} busy.`,
      '',
    );
  }
  if (h.goal.judged) lines.push(...reasonParagraph(h.goal.met ? 'Why met.' : 'Why missed.', scalingReasons(h)));
  return lines;
}

/** The claims that explain the verdict on two processes, each tested against this run's figures (reasons.ts). */
export function scalingReasons(h: Entry<HorizontalScaling>): Claim[] {
  const one = h.rows.find((row) => row.side === 'ours' && row.processes === 1);
  const two = h.rows.find((row) => row.side === 'ours' && row.processes === 2);
  if (!one || !two) return [];
  const need = (two.ceiling * two.cpu.workerMsPerJob) / 1000;
  const machine = two.cpu.allProcesses;
  return supported([
    claim(
      `Two processes reached ${fmt(h.speedup2)}× one (raw BullMQ ${fmt(h.rawSpeedup2)}×): the ${h.cores} cores had room for a second event loop.`,
      h.speedup2 >= 1.8,
      `speedup ${fmt(h.speedup2)}`,
    ),
    claim(
      `CPU: with two processes all processes on the machine kept its ${h.cores} cores ${pct(machine)} busy (the workers ${fmt(two.cpu.workers)} cores, Redis ${fmt(two.cpu.redis)}, the receiver ${fmt(two.cpu.server)}, the rest other processes).`,
      machine >= MACHINE_FULL,
      `machine busy ${pct(machine)}`,
    ),
    claim(
      `At ${fmt(two.cpu.workerMsPerJob, 2)} ms of worker CPU per job, the ${num(two.ceiling)} jobs/s two processes could reach would need ${fmt(need)} cores for the workers alone: with Redis and the receiver, more than the ${h.cores} cores have.`,
      need + (two.cpu.redis ?? 0) + (two.cpu.server ?? 0) >= MACHINE_FULL * h.cores,
      `workers would need ${fmt(need)} cores`,
    ),
    claim(
      `The machine was not full (${pct(machine)} busy with two processes), so the shortfall is not the machine's CPU; each process was busy ${pct(two.cpu.perWorker)} of a core at most.`,
      machine < MACHINE_FULL && h.speedup2 < 1.8,
      `machine busy ${pct(machine)}`,
    ),
  ]);
}

export const horizontalScaling: Benchmark<HorizontalScaling> = {
  name: 'horizontal-scaling',
  figures: ['rows.0.jobsPerSecond.median', 'rows.1.jobsPerSecond.median', 'speedup2', 'rawSpeedup2'],
  run,
  report,
};
