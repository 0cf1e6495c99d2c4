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
import { cpuMedians, describeRedis, spread, startDelayServer, startSide, withRedis, type Round } from './harness.js';
import { IO_CEILING, IO_CONCURRENCY, IO_LATENCY_MS } from './io-concurrency.js';
import { log, type Benchmark, type Entry, type Goal, type Spread } from './lib.js';
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
  const counts = quick ? [1, 2] : [1, 2, 4];
  const perProcess = quick ? 100 : 2_000;
  const warmupPerProcess = quick ? 50 : 500;
  const rounds = quick ? 1 : 3;
  const cores = cpus().length;
  return withRedis(async (redis) => {
    const server = redis.stopLater(await startDelayServer(IO_LATENCY_MS));
    const rows: Row[] = [];
    for (const side of ['ours', 'raw'] as const) {
      for (const processes of counts) {
        const prefix = redis.prefix(`hs-${side}-${processes}`);
        const group = await startSide({
          side,
          url: redis.url,
          prefix,
          processes,
          concurrency: IO_CONCURRENCY,
          port: 'webhook',
          webhookUrl: server.url,
          log: 'file',
          delayServer: server,
        });
        try {
          await group.run(warmupPerProcess * processes);
          const results: Round[] = [];
          for (let round = 0; round < rounds; round += 1) {
            const result = await group.run(perProcess * processes);
            results.push(result);
            log(
              `horizontal-scaling ${side} ${processes} process(es) round ${round + 1}: ${result.jobsPerSecond.toFixed(0)} jobs/s`,
            );
          }
          const cpu = cpuMedians(results, cores);
          rows.push({
            side,
            processes,
            jobsPerRound: perProcess * processes,
            jobsPerSecond: spread(results.map((r) => r.jobsPerSecond)),
            ceiling: IO_CEILING * processes,
            balance: spread(results.map((r) => Math.min(...r.perWorker) / Math.max(...r.perWorker))).median,
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
        } finally {
          await group.stop();
        }
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
    '| processes | aftercall jobs/s | × one | raw BullMQ jobs/s | × one | ceiling | aftercall workers (cores) | Redis (cores) | receiver (cores) | machine busy |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...counts.map((processes) => {
      const ours = at('ours', processes);
      const raw = at('raw', processes);
      return `| ${processes} | ${range(ours?.jobsPerSecond)} | ${fmt(ours?.speedup)} | ${range(raw?.jobsPerSecond)} | ${fmt(raw?.speedup)} | ${num(ours?.ceiling)} | ${fmt(ours?.cpu.workers)} | ${fmt(ours?.cpu.redis)} | ${fmt(ours?.cpu.server)} | ${pct(ours?.cpu.allProcesses)} |`;
    }),
    '',
    `Two processes against one: ${fmt(h.speedup2)}× (${verdict(h.goal, 'goal ≥ 1.8')}); raw BullMQ ${fmt(h.rawSpeedup2)}×.${Number.isFinite(h.speedup4) ? ` Four: ${fmt(h.speedup4)}×.` : ''}`,
    '',
  ];
  const two = at('ours', 2);
  if (h.goal.judged && !h.goal.met && two) {
    const need = (2 * at('ours', 1)!.ceiling * two.cpu.workerMsPerJob) / 1000;
    lines.push(
      `**Why missed.** CPU. With two processes the machine's ${h.cores} cores were ${pct(two.cpu.allProcesses)} busy: the workers used`,
      `${fmt(two.cpu.workers)} cores, Redis ${fmt(two.cpu.redis)}, the receiver ${fmt(two.cpu.server)}, the rest other processes. At`,
      `${fmt(two.cpu.workerMsPerJob, 2)} ms of worker CPU per job, the ${num(two.ceiling)} jobs/s two processes could reach would need`,
      `${fmt(need)} cores for the workers alone. Processes scale while there are cores to run them; on ${h.cores} cores shared with Redis`,
      `and the receiver they cannot${h.rawSpeedup2 < 1.8 ? ', and raw BullMQ stalls the same way (its column)' : `; raw BullMQ, at ${fmt(at('raw', 2)?.cpu.workerMsPerJob, 2)} ms of worker CPU per job, still fits`}. Run this on a machine`,
      'with more cores, or with the receiver and Redis elsewhere, to see the scaling itself; cheaper deliveries (throughput and',
      'I/O sections) raise the ceiling on this one.',
      '',
    );
  }
  return lines;
}

export const horizontalScaling: Benchmark<HorizontalScaling> = {
  name: 'horizontal-scaling',
  figures: ['rows.0.jobsPerSecond.median', 'rows.1.jobsPerSecond.median', 'speedup2', 'rawSpeedup2'],
  run,
  report,
};
