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
import type { Benchmark, Entry, Goal, Spread } from './lib.js';
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
  };
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
      return {
        jobsPerSecond,
        efficiency: jobsPerSecond.median / IO_CEILING,
        cpu: {
          worker: cpu.workers,
          redis: cpu.redis,
          server: cpu.server,
          machine: cpu.machine,
          allProcesses: cpu.allProcesses,
          workerMsPerJob: cpu.workerMsPerJob,
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
        metric: 'ours jobs/s / ceiling (concurrency / latency)',
        limit: 0.9,
        judged: !quick,
        met: quick ? null : ours.efficiency >= 0.9,
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
    `| share of the ${num(io.ceiling)} jobs/s ceiling | ${pct(io.ours.efficiency, 1)} | ${pct(io.raw.efficiency, 1)} | ${verdict(io.goal, '≥ 90 %')} |`,
    `| worker process CPU per job (ms) | ${fmt(io.ours.cpu.workerMsPerJob, 3)} | ${fmt(io.raw.cpu.workerMsPerJob, 3)} | |`,
    `| worker process busy (share of one core) | ${pct(io.ours.cpu.worker)} | ${pct(io.raw.cpu.worker)} | |`,
    `| machine busy, all processes (share of all cores) | ${pct(io.ours.cpu.allProcesses)} | ${pct(io.raw.cpu.allProcesses)} | |`,
    '',
    `aftercall / raw BullMQ: ${fmt(io.ratio)}.`,
    '',
  ];
  if (d) {
    lines.push(
      `The delivery path's pieces, timed alone against the same receiver at the same concurrency: Node's \`fetch\` costs`,
      `${fmt(d.fetchMsPerRequest, 3)} ms of CPU per request, \`node:http\` with a keep-alive agent ${fmt(d.nodeHttpMsPerRequest, 3)} ms. A bare loop of requests, no`,
      `queue and no Redis, reaches ${pct(d.fetchRequestsPerSecond / io.ceiling, 1)} of the ceiling with \`fetch\` and ${pct(d.nodeHttpRequestsPerSecond / io.ceiling, 1)} with \`node:http\`. Signing with the`,
      `\`standardwebhooks\` package ${us(d.signStandardWebhooks)} per request (\`node:crypto\`'s HMAC: ${us(d.signNodeCrypto)}). aftercall's webhook`,
      'adapter sends with `node:http` and a keep-alive agent; the raw BullMQ processor uses `fetch`.',
      '',
    );
  }
  if (io.goal.judged && !io.goal.met) {
    lines.push(
      `**Why missed.** The worker process runs short of CPU, not of concurrency: at ${num(io.ours.jobsPerSecond.median)} jobs/s it was busy`,
      `${pct(io.ours.cpu.worker)} of a core, at ${fmt(io.ours.cpu.workerMsPerJob, 2)} ms of CPU per job; ${num(io.ceiling)} jobs/s would need`,
      `${fmt(io.ours.cpu.workerMsPerJob, 2)} cores of one single-threaded process, and every millisecond the event loop is busy delays`,
      `the next job of each of the ${io.concurrency} slots. Much of it is the HTTP client${d ? ` (\`node:http\`: ${fmt(d.nodeHttpMsPerRequest, 2)} ms per request, and a bare loop of it alone reaches ${pct(d.nodeHttpRequestsPerSecond / io.ceiling)}; \`fetch\`: ${fmt(d.fetchMsPerRequest, 2)} ms)` : ''}; raw BullMQ`,
      io.raw.efficiency < 0.9
        ? `with a bare \`fetch\` misses the goal too (${pct(io.raw.efficiency)} of the ceiling). aftercall adds its handler's steps (see throughput)`
        : `with a bare \`fetch\` reaches ${pct(io.raw.efficiency)} of the ceiling, so what tips aftercall over is its own share: its handler's steps (see throughput)`,
      `and the signing above; in all, ${fmt(io.ours.cpu.workerMsPerJob, 2)} ms of CPU per job against raw BullMQ's ${fmt(io.raw.cpu.workerMsPerJob, 2)} ms with \`fetch\`. Other processes on`,
      'the machine take CPU from the worker as well (the machine-busy row).',
      '',
    );
  }
  return lines;
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
