/**
 * Processing throughput: one worker process at concurrency 50 draining a backlog of
 * update_crm jobs with an in-process no-op delivery port, against a raw BullMQ Worker
 * (no-op processor, same concurrency) draining the same jobs added with Queue.addBulk.
 *
 * Each side runs in a child process of its own (worker-process.ts), both on a private
 * redis-server. aftercall's worker logs at info (the production default) to a file. A
 * round: pause the queue, enqueue the jobs (ours through the real producer, one
 * conversationEnded per no_action outcome; raw with addBulk), resume, and time until the
 * last job is finished. One warm-up round per side first; the sides alternate.
 */
import { cpus } from 'node:os';
import { handlerCosts, type HandlerCosts } from './cost-breakdown.js';
import {
  alternateRounds,
  cpuMedians,
  describeRedis,
  spread,
  startSide,
  stopAll,
  withRedis,
  type Round,
  type Side,
} from './harness.js';
import type { Benchmark, Entry, Goal, Spread } from './lib.js';
import { fmt, measuredAt, num, pct, plural, range, us, verdict } from './report.js';
import { claim, CPU_BOUND, reasonParagraph, supported, type Claim } from './reasons.js';

export const CONCURRENCY = 50;
/** The control side's raw BullMQ worker keeps this many small objects alive (a larger heap). */
export const BALLAST = 80_000;

interface SideCpu {
  worker: number;
  redis: number | undefined;
  machine: number;
  allProcesses: number;
  workerMsPerJob: number;
  redisMsPerJob: number;
  /** The worker's garbage collection pauses per job (ms) and collections per 1,000 jobs; absent in older results. */
  gcMsPerJob?: number;
  gcPerThousandJobs?: number;
}

export interface Throughput {
  jobsPerRound: number;
  warmupJobs: number;
  concurrency: number;
  redis: string;
  logDestination: 'file';
  logLevel: 'info';
  logBytesPerJob: number | undefined;
  logLines: number | undefined;
  ours: Spread;
  raw: Spread;
  ratio: number;
  ratioPerRound: Spread;
  cpu: { ours: SideCpu; raw: SideCpu };
  /**
   * A control run beside the two sides: raw BullMQ's worker keeping `ballast` small objects
   * alive, its jobs/s and CPU; absent in older results.
   */
  control?: { ballast: number; jobsPerSecond: Spread; cpu: SideCpu };
  /** µs of CPU per job of the steps aftercall's handler adds (cost-breakdown.ts). */
  breakdown: HandlerCosts;
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<Throughput> {
  const jobs = quick ? 500 : 20_000;
  const warmup = quick ? 200 : 5_000;
  const rounds = quick ? 1 : 3;
  return withRedis(async (redis) => {
    const sides = {} as Record<'ours' | 'raw' | 'control', Side>;
    for (const name of ['ours', 'raw', 'control'] as const) {
      const prefix = redis.prefix(`tp-${name}`);
      sides[name] = redis.stopLater(
        await startSide({
          side: name === 'ours' ? 'ours' : 'raw',
          url: redis.url,
          prefix,
          concurrency: CONCURRENCY,
          port: 'noop',
          log: 'file',
          ...(name === 'control' && { ballast: BALLAST }),
        }),
      );
    }
    const results = await alternateRounds({ sides, warmup, jobs, rounds, label: 'throughput' });
    const logs = sides.ours.worker.logStats();
    await stopAll(Object.values(sides));
    const breakdown = await handlerCosts({ quick });
    const ours = spread(results.ours.map((r) => r.jobsPerSecond));
    const raw = spread(results.raw.map((r) => r.jobsPerSecond));
    const ratio = ours.median / raw.median;
    const cores = cpus().length;
    const cpuOf = (rounds: Round[]): SideCpu => {
      const cpu = cpuMedians(rounds, cores);
      return {
        worker: cpu.workers,
        redis: cpu.redis,
        machine: cpu.machine,
        allProcesses: cpu.allProcesses,
        workerMsPerJob: cpu.workerMsPerJob,
        redisMsPerJob: cpu.redisMsPerJob,
        gcMsPerJob: cpu.gcMsPerJob,
        gcPerThousandJobs: cpu.gcPerThousandJobs,
      };
    };
    return {
      jobsPerRound: jobs,
      warmupJobs: warmup,
      concurrency: CONCURRENCY,
      redis: describeRedis(redis),
      logDestination: 'file',
      logLevel: 'info',
      logBytesPerJob: logs ? logs.bytes / logs.lines : undefined,
      logLines: logs?.lines,
      ours,
      raw,
      ratio,
      ratioPerRound: spread(results.ours.map((r, i) => r.jobsPerSecond / results.raw[i]!.jobsPerSecond)),
      cpu: { ours: cpuOf(results.ours), raw: cpuOf(results.raw) },
      control: {
        ballast: BALLAST,
        jobsPerSecond: spread(results.control.map((r) => r.jobsPerSecond)),
        cpu: cpuOf(results.control),
      },
      breakdown,
      goal: { metric: 'ours / raw jobs per second', limit: 0.8, judged: !quick, met: quick ? null : ratio >= 0.8 },
    };
  });
}

function report(t: Entry<Throughput>): string[] {
  const b = t.breakdown;
  const gapUs = (t.cpu.ours.workerMsPerJob - t.cpu.raw.workerMsPerJob) * 1000;
  const steps = b ? b.logLine + b.jobValidation + b.metrics : Number.NaN;
  const lines = [
    '## Processing throughput',
    '',
    ...measuredAt(t),
    `${num(t.jobsPerRound)} \`update_crm\` jobs per round, drained by one worker process at concurrency ${t.concurrency} with a no-op`,
    "delivery: aftercall's `startWorker` with an in-process no-op port, its jobs enqueued beforehand through the producer",
    "(`conversationEnded` of a `no_action` outcome, one task each); raw BullMQ's `Worker` with a no-op processor, the same",
    `job data and options added with \`Queue.addBulk\`. Each side runs in a child process of its own, both on ${t.redis};`,
    'the queue is paused while a round is enqueued, and a round lasts from its resume to its last job. One warm-up round',
    `of ${num(t.warmupJobs)} jobs per side, then ${plural(t.ours.rounds, 'round')}, alternating the sides.`,
    `aftercall's worker logs at \`${t.logLevel}\` (the production default) to a file: one line per job, ${fmt(t.logBytesPerJob, 0)} bytes.`,
    '',
    '| | aftercall | raw BullMQ | ratio | goal |',
    '|---|---|---|---|---|',
    `| jobs/s | ${range(t.ours)} | ${range(t.raw)} | ${fmt(t.ratio)} | ${verdict(t.goal, '≥ 0.8')} |`,
    `| worker process CPU per job (ms) | ${fmt(t.cpu.ours.workerMsPerJob, 3)} | ${fmt(t.cpu.raw.workerMsPerJob, 3)} | ${fmt(t.cpu.ours.workerMsPerJob / t.cpu.raw.workerMsPerJob)} | |`,
    ...gcRows(t.cpu),
    `| Redis CPU per job (ms) | ${fmt(t.cpu.ours.redisMsPerJob, 3)} | ${fmt(t.cpu.raw.redisMsPerJob, 3)} | ${fmt(t.cpu.ours.redisMsPerJob / t.cpu.raw.redisMsPerJob)} | |`,
    `| worker process busy (share of one core) | ${pct(t.cpu.ours.worker)} | ${pct(t.cpu.raw.worker)} | | |`,
    `| machine busy, all processes (share of all cores) | ${pct(t.cpu.ours.allProcesses)} | ${pct(t.cpu.raw.allProcesses)} | | |`,
    '',
    "CPU per job is the process' CPU time (`process.cpuUsage`; Redis: `used_cpu_user + used_cpu_sys`) over a round, divided",
    'by its jobs (medians over rounds); it moves less than jobs/s when other work shares the machine.',
    '',
    ...controlLines(t),
  ];
  if (b) {
    lines.push(
      `Steps aftercall's handler adds to each job, each timed alone (µs of CPU per job): its log line ${us(b.logLine)}`,
      `(${us(b.logLineWithoutRedaction)} without the logger's redaction paths; written to /dev/null here), the`,
      `validation of the job data (envelope and payload) ${us(b.jobValidation)} through the schemas zod compiles`,
      `(${us(b.jobValidationUncompiled)} through the same schemas uncompiled), and the metrics ${us(b.metrics)}: ${us(steps)} together, against a`,
      `measured gap of ${us(gapUs)} per job in the worker process (timed alone, with warm caches and no garbage left for`,
      'later, each step costs less than in the worker).',
      '',
    );
  }
  if (t.goal.judged) lines.push(...reasonParagraph(t.goal.met ? 'Why met.' : 'Why missed.', throughputReasons(t)));
  return lines;
}

/** The claims that explain the verdict, each tested against this run's figures (reasons.ts). */
/** The control run: raw BullMQ's worker with a larger heap, in the same rounds. */
function controlLines(t: Throughput): string[] {
  const c = t.control;
  if (!c) return [];
  const gc = (side: SideCpu) => (side.gcMsPerJob === undefined ? 'n/a' : `${fmt(side.gcMsPerJob * 1000, 1)} µs`);
  return [
    `A control ran in the same rounds, alternating with the two sides: raw BullMQ's worker, unchanged but for`,
    `${num(c.ballast)} small objects it keeps alive from its start (each an object holding a string and another object):`,
    `${range(c.jobsPerSecond)} jobs/s (${fmt(c.jobsPerSecond.median / t.raw.median)} of raw BullMQ's), ${fmt(c.cpu.workerMsPerJob, 3)} ms of worker CPU per job, garbage`,
    `collection ${gc(c.cpu)} per job (raw BullMQ: ${gc(t.cpu.raw)}; aftercall: ${gc(t.cpu.ours)}).`,
    '',
  ];
}

/** Rows of the workers' garbage collection, when the results have it. */
export function gcRows(cpu: { ours: SideCpu; raw: SideCpu }): string[] {
  const { ours, raw } = cpu;
  if (ours.gcMsPerJob === undefined || raw.gcMsPerJob === undefined) return [];
  return [
    `| of which garbage collection pauses per job (µs) | ${fmt(ours.gcMsPerJob * 1000, 1)} | ${fmt(raw.gcMsPerJob * 1000, 1)} | ${fmt(ours.gcMsPerJob / raw.gcMsPerJob)} | |`,
    `| collections per 1,000 jobs, and pause of each (ms) | ${fmt(ours.gcPerThousandJobs, 1)}, ${fmt((ours.gcMsPerJob * 1000) / ours.gcPerThousandJobs!, 2)} | ${fmt(raw.gcPerThousandJobs, 1)}, ${fmt((raw.gcMsPerJob * 1000) / raw.gcPerThousandJobs!, 2)} | | |`,
  ];
}

export function throughputReasons(t: Entry<Throughput>): Claim[] {
  const busy = t.cpu.ours.worker;
  const cpuRatio = t.cpu.ours.workerMsPerJob / t.cpu.raw.workerMsPerJob;
  const gapUs = (t.cpu.ours.workerMsPerJob - t.cpu.raw.workerMsPerJob) * 1000;
  const gcGapUs =
    t.cpu.ours.gcMsPerJob !== undefined && t.cpu.raw.gcMsPerJob !== undefined
      ? (t.cpu.ours.gcMsPerJob - t.cpu.raw.gcMsPerJob) * 1000
      : undefined;
  const gcPause = (side: SideCpu) => (side.gcMsPerJob! * 1000) / side.gcPerThousandJobs!;
  return supported([
    claim(
      `With a no-op delivery the worker process is the bottleneck (busy ${pct(busy)} of a core), and its throughput is the inverse of its CPU per job: aftercall's worker needs ${fmt(cpuRatio)} times raw BullMQ's.`,
      busy >= CPU_BOUND && cpuRatio > 1,
      `worker busy ${pct(busy)}, CPU per job ${fmt(cpuRatio)}x`,
    ),
    claim(
      `The work aftercall adds is in its job handler: the log line, the validation of the job data, the metrics (timed above), and the garbage these leave.`,
      cpuRatio > 1,
      `CPU per job ${fmt(cpuRatio)}x`,
    ),
    claim(
      gcGapUs === undefined
        ? ''
        : `Garbage collection paused aftercall's worker ${fmt(gcGapUs, 1)} µs per job longer than raw BullMQ's (the CPU per job between them: ${fmt(gapUs, 1)} µs): its collections came ${fmt(t.cpu.ours.gcPerThousandJobs! / t.cpu.raw.gcPerThousandJobs!)} times as often per job, and each paused it ${fmt(gcPause(t.cpu.ours), 2)} ms against ${fmt(gcPause(t.cpu.raw), 2)} ms.`,
      gcGapUs !== undefined && gcGapUs > 0 && gapUs > 0,
      `GC per job ${gcGapUs === undefined ? 'not measured' : `${fmt(gcGapUs, 1)} µs more`}, gap ${fmt(gapUs, 1)} µs`,
    ),
    claim(
      t.control
        ? `Raw BullMQ's own worker, holding ${num(t.control.ballast)} more small objects, paused ${fmt((t.control.cpu.gcMsPerJob ?? Number.NaN) * 1000, 1)} µs per job for garbage collection and ran at ${fmt(t.control.jobsPerSecond.median / t.raw.median)} of its speed without them: the collections' share of the gap comes with a larger heap, not with aftercall's steps.`
        : '',
      t.control !== undefined &&
        t.control.cpu.gcMsPerJob !== undefined &&
        t.cpu.raw.gcMsPerJob !== undefined &&
        t.control.cpu.gcMsPerJob > 1.5 * t.cpu.raw.gcMsPerJob &&
        t.control.jobsPerSecond.median < t.raw.median,
      t.control
        ? `control GC ${fmt((t.control.cpu.gcMsPerJob ?? Number.NaN) * 1000, 1)} µs vs raw ${fmt((t.cpu.raw.gcMsPerJob ?? Number.NaN) * 1000, 1)} µs, control ${fmt(t.control.jobsPerSecond.median / t.raw.median)} of raw`
        : 'no control run',
    ),
    claim(
      `Its worker needed ${fmt(cpuRatio)} times raw BullMQ's CPU per job, within what the ${fmt(t.goal.limit)}× goal allows.`,
      t.ratio >= t.goal.limit,
      `ratio ${fmt(t.ratio)}`,
    ),
    claim(
      `The worker process was not short of CPU (busy ${pct(busy)} of a core): the rest of the round went waiting, for Redis or for a core the machine's other processes held.`,
      busy < CPU_BOUND,
      `worker busy ${pct(busy)}`,
    ),
  ]);
}

export const throughput: Benchmark<Throughput> = {
  name: 'throughput',
  figures: [
    'ours.median',
    'raw.median',
    'ratio',
    'cpu.ours.workerMsPerJob',
    'cpu.raw.workerMsPerJob',
    'breakdown.logLine',
    'breakdown.jobValidation',
    'breakdown.jobValidationUncompiled',
  ],
  run,
  report,
};
