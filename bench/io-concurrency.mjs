// I/O-bound concurrency: every delivery takes 100 ms (a receiver on loopback that answers
// after 100 ms, in a process of its own). One aftercall worker process at concurrency 100
// delivering update_crm through the real signed webhook (WEBHOOK_SECRET set, CRM_WEBHOOK_URL
// pointing at the receiver) can at best finish 100 / 0.1 s = 1,000 jobs/s; goal: at least
// 90 % of that. Raw BullMQ does the same with a processor that POSTs the job's data to the
// same receiver with fetch, at the same concurrency.
//
// Rounds as in the throughput benchmark: pause, enqueue, resume, time until the last job
// is finished; one warm-up round per side, the sides alternate. Private redis-server.
import { cpus } from 'node:os';
import { deliveryCosts } from './cost-breakdown.mjs';
import {
  alternateRounds,
  cpuMedians,
  describeRedis,
  spread,
  startDelayServer,
  startSide,
  stopAll,
  withRedis,
} from './harness.mjs';

export const IO_CONCURRENCY = 100;
export const IO_LATENCY_MS = 100;
export const IO_CEILING = IO_CONCURRENCY / (IO_LATENCY_MS / 1000);

export async function ioConcurrency({ quick }) {
  const jobs = quick ? 300 : 3_000;
  const warmup = quick ? 100 : 1_000;
  const rounds = quick ? 1 : 3;
  return withRedis(async (redis) => {
    const server = redis.stopLater(await startDelayServer(IO_LATENCY_MS));
    const sides = {};
    for (const side of ['ours', 'raw']) {
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
    const summary = (side) => {
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
      // CPU of the delivery path's pieces (see cost-breakdown.mjs)
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
