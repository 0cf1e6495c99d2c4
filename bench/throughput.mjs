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
import {
  cleanPrefixes, describeRedis, cpuShares, log, measureRound, oursEnqueuer, queueControl, rawEnqueuer, spread, startWorkerProcess, stopAll, withRedis,
} from './harness.mjs';

export const CONCURRENCY = 50;

export async function throughput({ quick }) {
  const jobs = quick ? 500 : 20_000;
  const warmup = quick ? 200 : 5_000;
  const rounds = quick ? 1 : 3;
  return withRedis(async (redis) => {
    const sides = {};
    const stoppable = [];
    try {
      for (const side of ['ours', 'raw']) {
        const prefix = `bench-tp-${side}-${process.pid}`;
        const worker = await startWorkerProcess({ side, url: redis.url, prefix, concurrency: CONCURRENCY, port: 'noop', log: 'file' });
        const enqueuer = side === 'ours' ? oursEnqueuer(redis.url, prefix) : rawEnqueuer(redis.url, prefix);
        const control = queueControl(redis.url, prefix);
        sides[side] = { worker, enqueuer, control, rounds: [] };
        stoppable.push(worker, enqueuer, control);
      }
      const run = (side, n) =>
        measureRound({ control: sides[side].control, enqueue: sides[side].enqueuer.enqueue, workers: [sides[side].worker], n, redisClient: sides[side].control.client });
      for (const side of ['ours', 'raw']) await run(side, warmup);
      for (let round = 0; round < rounds; round += 1) {
        const order = round % 2 === 0 ? ['ours', 'raw'] : ['raw', 'ours'];
        for (const side of order) {
          const result = await run(side, jobs);
          sides[side].rounds.push(result);
          log(`throughput ${side} round ${round + 1}: ${result.jobsPerSecond.toFixed(0)} jobs/s`);
        }
      }
      const logs = sides.ours.worker.logStats();
      await stopAll(stoppable);
      const breakdown = await handlerCosts({ quick });
      const ours = spread(sides.ours.rounds.map((r) => r.jobsPerSecond));
      const raw = spread(sides.raw.rounds.map((r) => r.jobsPerSecond));
      const ratio = ours.median / raw.median;
      const cores = cpus().length;
      const cpuOf = (side) => {
        const shares = sides[side].rounds.map((r) => cpuShares(r, cores));
        return {
          worker: spread(shares.map((s) => s.workers)).median,
          redis: spread(shares.map((s) => s.redis)).median,
          machine: spread(shares.map((s) => s.machine)).median,
          allProcesses: spread(shares.map((s) => s.allProcesses ?? Number.NaN)).median,
          workerMsPerJob: spread(sides[side].rounds.map((r) => r.cpu.workersMs[0] / r.n)).median,
          redisMsPerJob: spread(sides[side].rounds.map((r) => r.cpu.redisMs / r.n)).median,
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
        ratioPerRound: spread(sides.ours.rounds.map((r, i) => r.jobsPerSecond / sides.raw.rounds[i].jobsPerSecond)),
        cpu: { ours: cpuOf('ours'), raw: cpuOf('raw') },
        // µs of CPU per job of the steps aftercall's handler adds (see cost-breakdown.mjs)
        breakdown,
        goal: { metric: 'ours / raw jobs per second', limit: 0.8, judged: !quick, met: quick ? null : ratio >= 0.8 },
      };
    } finally {
      await stopAll(stoppable);
      if (!redis.isolated) await cleanPrefixes(redis.url, Object.keys(sides).map((side) => `bench-tp-${side}-${process.pid}`));
    }
  }, {});
}
