// Processing throughput: one worker process at concurrency 50 draining a backlog of
// update_crm jobs with an in-process no-op delivery port, against a raw BullMQ Worker
// (no-op processor, same concurrency) draining the same jobs added with Queue.addBulk.
//
// Each side runs in a child process of its own (bench/worker-process.mjs), both on a
// private redis-server. aftercall's worker logs at info (the production default) to a
// file. A round: pause the queue, enqueue the jobs (ours through the real producer, one
// conversationEnded per no_action outcome; raw with addBulk), resume, and time until the
// last job is finished. One warm-up round per side first; the sides alternate.
import { cpus } from 'node:os';
import { handlerCosts } from './cost-breakdown.mjs';
import { alternateRounds, cpuMedians, describeRedis, spread, startSide, stopAll, withRedis } from './harness.mjs';

export const CONCURRENCY = 50;

export async function throughput({ quick }) {
  const jobs = quick ? 500 : 20_000;
  const warmup = quick ? 200 : 5_000;
  const rounds = quick ? 1 : 3;
  return withRedis(async (redis) => {
    const sides = {};
    for (const side of ['ours', 'raw']) {
      const prefix = redis.prefix(`tp-${side}`);
      sides[side] = redis.stopLater(
        await startSide({ side, url: redis.url, prefix, concurrency: CONCURRENCY, port: 'noop', log: 'file' }),
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
    const cpuOf = (side) => {
      const cpu = cpuMedians(results[side], cores);
      return {
        worker: cpu.workers,
        redis: cpu.redis,
        machine: cpu.machine,
        allProcesses: cpu.allProcesses,
        workerMsPerJob: cpu.workerMsPerJob,
        redisMsPerJob: cpu.redisMsPerJob,
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
      ratioPerRound: spread(results.ours.map((r, i) => r.jobsPerSecond / results.raw[i].jobsPerSecond)),
      cpu: { ours: cpuOf('ours'), raw: cpuOf('raw') },
      // µs of CPU per job of the steps aftercall's handler adds (see cost-breakdown.mjs)
      breakdown,
      goal: { metric: 'ours / raw jobs per second', limit: 0.8, judged: !quick, met: quick ? null : ratio >= 0.8 },
    };
  });
}
