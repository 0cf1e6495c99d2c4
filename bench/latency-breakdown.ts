/**
 * Where one job's time goes in the I/O-bound benchmarks, for either side, from timestamps
 * taken during a round and put together after it (nothing is sent or computed while the
 * round runs, so the round measures what it measured before):
 *
 *   processedOn   BullMQ's, in the job hash: the client time of the call that moved the job
 *                 to active (moveToActive, or moveToFinished of the slot's previous job,
 *                 which fetches the next one in the same call)
 *   start, end    the handler's start and end, in the worker process (worker-process.ts)
 *   arrived       the receiver read the request (delay-server.ts), by its idempotency-key
 *   replied       the receiver wrote its answer
 *   finishedOn    BullMQ's, in the job hash: the client time of the moveToFinished call
 *
 * All are epoch milliseconds of the same machine's clock. The segments of one job:
 *   fetch         processedOn -> start: the moving call's round trip, Redis, the reply
 *                 parsed, the handler started
 *   toRequest     start -> arrived: the handler's work before the request, and the send
 *   receiver      arrived -> replied: the receiver's 100 ms (and its timer's lateness)
 *   fromResponse  replied -> end: the answer read, the handler's work after it
 *   toFinish      end -> finishedOn: from the handler's end to BullMQ's completing call
 * A slot's cycle is their sum (its next job's fetch starts at this job's finishedOn), so
 * concurrency / mean cycle is the throughput the slots could reach; the means are given.
 * Script calls per job: EVALSHA and EVAL calls over the round (`INFO commandstats`) / jobs.
 *
 * The round's start, apart: a round begins with all its jobs waiting, and BullMQ's worker
 * fetches as many as its concurrency one by one before it starts any (Worker.mainLoop), so its
 * first wave (the jobs moved to active before any job finished) starts together. `phases`
 * gives a slot's mean cycle (finishedOn - processedOn, the segments' sum) over the round's
 * first START_WAVES waves, by processedOn, and over the jobs after them.
 */
import type { Redis } from 'ioredis';
import { decodeKeyPart } from '../src/tasks/job-id.js';
import type { ServerTimings, WorkerTimings } from './protocol.js';

export const SEGMENTS = ['fetch', 'toRequest', 'receiver', 'fromResponse', 'toFinish'] as const;
export type Segment = (typeof SEGMENTS)[number];

export interface LatencyBreakdown {
  /** Jobs whose every timestamp was found. */
  jobs: number;
  /** Mean ms per segment. */
  mean: Record<Segment, number>;
  /** 99th percentile ms per segment. */
  p99: Record<Segment, number>;
  /** Sum of the means: one slot's mean time per job. */
  cycle: number;
  /** EVALSHA + EVAL calls per job over the round. */
  scriptCallsPerJob: number;
  /** The round's start and the rest (absent in results from before 1 Dec 2026, evening). */
  phases?: Phases;
}

/** How many waves count as the round's start. */
export const START_WAVES = 3;

export interface Phases {
  /** Jobs moved to active before the round's first job finished: its first wave. */
  wave: number;
  /** Jobs in the round's first START_WAVES waves, and their mean cycle (ms). */
  startJobs: number;
  startCycle: number;
  /** The jobs after them, and their mean cycle (ms). */
  restJobs: number;
  restCycle: number;
}

/** A slot's mean cycle over the round's first START_WAVES waves and over the rest, from [processedOn, finishedOn] per job. */
export function phasesOf(jobs: readonly (readonly [number, number])[]): Phases | undefined {
  if (jobs.length === 0) return undefined;
  const sorted = [...jobs].sort((a, b) => a[0] - b[0]);
  const firstFinish = Math.min(...sorted.map(([, finishedOn]) => finishedOn));
  const wave = sorted.filter(([processedOn]) => processedOn < firstFinish).length;
  const startJobs = Math.min(sorted.length, START_WAVES * Math.max(1, wave));
  const cycle = (part: (readonly [number, number])[]) =>
    part.length ? mean(part.map(([processedOn, finishedOn]) => finishedOn - processedOn)) : Number.NaN;
  return {
    wave,
    startJobs,
    startCycle: cycle(sorted.slice(0, startJobs)),
    restJobs: sorted.length - startJobs,
    restCycle: cycle(sorted.slice(startJobs)),
  };
}

/** Script calls Redis has run so far (`INFO commandstats`). */
export async function scriptCalls(client: Redis): Promise<number> {
  const info = await client.info('commandstats');
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_(evalsha|eval|evalsha_ro|eval_ro|fcall):calls=(\d+)/gm)) {
    calls += Number(match[2]);
  }
  return calls;
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const p99 = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)]!;
};

/**
 * Puts one round's timestamps together: the workers' and the receiver's (their `timings`
 * replies) with the job hashes' processedOn and finishedOn, read from `client` under
 * `queueKey` (`<prefix>:<queue>`). `scriptCallsDelta`: script calls over the round.
 */
export async function breakdown({
  workers,
  server,
  client,
  queueKey,
  scriptCallsDelta,
}: {
  workers: WorkerTimings[];
  server: ServerTimings;
  client: Redis;
  queueKey: string;
  scriptCallsDelta: number;
}): Promise<LatencyBreakdown> {
  const requests = new Map(server.requests.map(([key, arrived, replied]) => [key, { arrived, replied }]));
  const jobs = workers.flatMap((worker) => worker.jobs);
  const pipeline = client.pipeline();
  for (const [jobId] of jobs) pipeline.hmget(`${queueKey}:${jobId}`, 'processedOn', 'finishedOn');
  const hashes = (await pipeline.exec()) ?? [];
  const segments = Object.fromEntries(SEGMENTS.map((segment) => [segment, [] as number[]])) as Record<
    Segment,
    number[]
  >;
  const moved: [number, number][] = [];
  jobs.forEach(([jobId, start, end], i) => {
    const [error, fields] = hashes[i] ?? [];
    const request = requests.get(decodeKeyPart(jobId));
    const [processedOn, finishedOn] = ((error ? [] : fields) as (string | null)[]).map(Number);
    if (!request || !processedOn || !finishedOn) return;
    moved.push([processedOn, finishedOn]);
    segments.fetch.push(start - processedOn);
    segments.toRequest.push(request.arrived - start);
    segments.receiver.push(request.replied - request.arrived);
    segments.fromResponse.push(end - request.replied);
    segments.toFinish.push(finishedOn - end);
  });
  const n = segments.fetch.length;
  const phases = phasesOf(moved);
  const means = Object.fromEntries(SEGMENTS.map((s) => [s, n ? mean(segments[s]) : Number.NaN])) as Record<
    Segment,
    number
  >;
  return {
    jobs: n,
    mean: means,
    p99: Object.fromEntries(SEGMENTS.map((s) => [s, n ? p99(segments[s]) : Number.NaN])) as Record<Segment, number>,
    cycle: SEGMENTS.reduce((sum, s) => sum + means[s], 0),
    scriptCallsPerJob: jobs.length ? scriptCallsDelta / jobs.length : Number.NaN,
    ...(phases && { phases }),
  };
}

/** Per-segment medians over rounds of their means (and p99s). */
export function medianBreakdown(rounds: LatencyBreakdown[]): LatencyBreakdown {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const pick = (get: (round: LatencyBreakdown) => number) => median(rounds.map(get));
  const meanBy = Object.fromEntries(SEGMENTS.map((s) => [s, pick((r) => r.mean[s])])) as Record<Segment, number>;
  const phased = rounds.flatMap((round) => (round.phases ? [round.phases] : []));
  const phase = (get: (phases: Phases) => number) => median(phased.map(get));
  return {
    ...(phased.length && {
      phases: {
        wave: phase((p) => p.wave),
        startJobs: phase((p) => p.startJobs),
        startCycle: phase((p) => p.startCycle),
        restJobs: phase((p) => p.restJobs),
        restCycle: phase((p) => p.restCycle),
      },
    }),
    jobs: pick((r) => r.jobs),
    mean: meanBy,
    p99: Object.fromEntries(SEGMENTS.map((s) => [s, pick((r) => r.p99[s])])) as Record<Segment, number>,
    cycle: SEGMENTS.reduce((sum, s) => sum + meanBy[s], 0),
    scriptCallsPerJob: pick((r) => r.scriptCallsPerJob),
  };
}
