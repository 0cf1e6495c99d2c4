// Horizontal scaling: the I/O-bound load of io-concurrency (deliveries through the signed
// webhook to a receiver that answers after 100 ms, concurrency 100 per process) served by
// 1, 2 and 4 aftercall worker processes (child processes, METRICS_PORT=0 each), and by as
// many raw BullMQ processes (fetch to the same receiver) for comparison. Each process
// count gets its own fresh processes, one warm-up round and timed rounds of
// (jobs per process x processes) jobs. Goal: 2 processes >= 1.8 x one.
//
// CPU: each worker's process.cpuUsage, Redis' used_cpu (INFO cpu, a private
// redis-server), the receiver's and the harness's, and the whole machine's busy time
// (/proc/stat, other users of the machine included), over each timed round.
import { cpus } from 'node:os';
import {
  cleanPrefixes, describeRedis, cpuShares, log, measureRound, oursEnqueuer, queueControl, rawEnqueuer, spread, startDelayServer, startWorkerProcess, stopAll, withRedis,
} from './harness.mjs';
import { IO_CEILING, IO_CONCURRENCY, IO_LATENCY_MS } from './io-concurrency.mjs';

export async function horizontalScaling({ quick }) {
  // A quick run only checks that the machinery works: 1 and 2 processes, small rounds.
  const counts = quick ? [1, 2] : [1, 2, 4];
  const perProcess = quick ? 100 : 2_000;
  const warmupPerProcess = quick ? 50 : 500;
  const rounds = quick ? 1 : 3;
  const cores = cpus().length;
  return withRedis(async (redis) => {
    const rows = [];
    const stoppable = [];
    const prefixes = [];
    try {
      const server = await startDelayServer(IO_LATENCY_MS);
      stoppable.push(server);
      for (const side of ['ours', 'raw']) {
        for (const processes of counts) {
          const prefix = `bench-hs-${side}-${processes}-${process.pid}`;
          prefixes.push(prefix);
          const group = [];
          try {
            const workers = await Promise.all(
              Array.from({ length: processes }, () =>
                startWorkerProcess({ side, url: redis.url, prefix, concurrency: IO_CONCURRENCY, port: 'webhook', webhookUrl: server.url, log: 'file' }),
              ),
            );
            group.push(...workers);
            const enqueuer = side === 'ours' ? oursEnqueuer(redis.url, prefix) : rawEnqueuer(redis.url, prefix);
            const control = queueControl(redis.url, prefix);
            group.push(enqueuer, control);
            const run = (n) => measureRound({ control, enqueue: enqueuer.enqueue, workers, n, redisClient: control.client, delayServer: server });
            await run(warmupPerProcess * processes);
            const results = [];
            for (let round = 0; round < rounds; round += 1) {
              const result = await run(perProcess * processes);
              results.push(result);
              log(`horizontal-scaling ${side} ${processes} process(es) round ${round + 1}: ${result.jobsPerSecond.toFixed(0)} jobs/s`);
            }
            const shares = results.map((r) => cpuShares(r, cores));
            const median = (pick) => spread(shares.map(pick)).median;
            rows.push({
              side,
              processes,
              jobsPerRound: perProcess * processes,
              jobsPerSecond: spread(results.map((r) => r.jobsPerSecond)),
              ceiling: IO_CEILING * processes,
              // how evenly the processes shared the work (smallest share / largest share)
              balance: spread(results.map((r) => Math.min(...r.perWorker) / Math.max(...r.perWorker))).median,
              cpu: {
                workers: median((s) => s.workers),
                perWorker: median((s) => Math.max(...s.perWorker)),
                redis: median((s) => s.redis),
                server: median((s) => s.server),
                harness: median((s) => s.harness),
                ours: median((s) => s.machine),
                allProcesses: median((s) => s.allProcesses ?? Number.NaN),
                workerMsPerJob: spread(results.map((r) => r.cpu.workersMs.reduce((a, b) => a + b, 0) / r.n)).median,
              },
            });
          } finally {
            await stopAll(group);
          }
        }
      }
    } finally {
      await stopAll(stoppable);
      if (!redis.isolated) await cleanPrefixes(redis.url, prefixes);
    }
    const at = (side, processes) => rows.find((row) => row.side === side && row.processes === processes)?.jobsPerSecond.median;
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
      goal: { metric: 'jobs/s with 2 processes / with 1', limit: 1.8, judged: !quick, met: quick ? null : speedup2 >= 1.8 },
    };
  });
}
