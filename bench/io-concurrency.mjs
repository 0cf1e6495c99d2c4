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
  cleanPrefixes, describeRedis, cpuShares, log, measureRound, oursEnqueuer, queueControl, rawEnqueuer, spread, startDelayServer, startWorkerProcess, stopAll, withRedis,
} from './harness.mjs';

export const IO_CONCURRENCY = 100;
export const IO_LATENCY_MS = 100;
export const IO_CEILING = IO_CONCURRENCY / (IO_LATENCY_MS / 1000);

export async function ioConcurrency({ quick }) {
  const jobs = quick ? 300 : 3_000;
  const warmup = quick ? 100 : 1_000;
  const rounds = quick ? 1 : 3;
  return withRedis(async (redis) => {
    const sides = {};
    const stoppable = [];
    const prefixes = [];
    try {
      const server = await startDelayServer(IO_LATENCY_MS);
      stoppable.push(server);
      for (const side of ['ours', 'raw']) {
        const prefix = `bench-io-${side}-${process.pid}`;
        prefixes.push(prefix);
        const worker = await startWorkerProcess({ side, url: redis.url, prefix, concurrency: IO_CONCURRENCY, port: 'webhook', webhookUrl: server.url, log: 'file' });
        const enqueuer = side === 'ours' ? oursEnqueuer(redis.url, prefix) : rawEnqueuer(redis.url, prefix);
        const control = queueControl(redis.url, prefix);
        sides[side] = { worker, enqueuer, control, rounds: [] };
        stoppable.push(worker, enqueuer, control);
      }
      const run = (side, n) =>
        measureRound({ control: sides[side].control, enqueue: sides[side].enqueuer.enqueue, workers: [sides[side].worker], n, redisClient: sides[side].control.client, delayServer: server });
      for (const side of ['ours', 'raw']) await run(side, warmup);
      for (let round = 0; round < rounds; round += 1) {
        const order = round % 2 === 0 ? ['ours', 'raw'] : ['raw', 'ours'];
        for (const side of order) {
          const result = await run(side, jobs);
          sides[side].rounds.push(result);
          log(`io-concurrency ${side} round ${round + 1}: ${result.jobsPerSecond.toFixed(0)} jobs/s`);
        }
      }
      // Stop the workers, then time the delivery path's pieces against the same receiver.
      await stopAll(Object.values(sides).flatMap((side) => [side.worker, side.enqueuer, side.control]));
      const delivery = await deliveryCosts({ quick, url: server.url, concurrency: IO_CONCURRENCY });
      const cores = cpus().length;
      const summary = (side) => {
        const shares = sides[side].rounds.map((r) => cpuShares(r, cores));
        const jobsPerSecond = spread(sides[side].rounds.map((r) => r.jobsPerSecond));
        return {
          jobsPerSecond,
          efficiency: jobsPerSecond.median / IO_CEILING,
          cpu: {
            worker: spread(shares.map((s) => s.workers)).median,
            redis: spread(shares.map((s) => s.redis)).median,
            server: spread(shares.map((s) => s.server)).median,
            machine: spread(shares.map((s) => s.machine)).median,
            allProcesses: spread(shares.map((s) => s.allProcesses ?? Number.NaN)).median,
            workerMsPerJob: spread(sides[side].rounds.map((r) => r.cpu.workersMs[0] / r.n)).median,
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
        goal: { metric: 'ours jobs/s / ceiling (concurrency / latency)', limit: 0.9, judged: !quick, met: quick ? null : ours.efficiency >= 0.9 },
      };
    } finally {
      await stopAll(stoppable);
      if (!redis.isolated) await cleanPrefixes(redis.url, prefixes);
    }
  });
}
