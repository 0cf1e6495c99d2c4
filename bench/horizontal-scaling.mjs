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
import { cpuMedians, describeRedis, log, spread, startDelayServer, startSide, withRedis } from './harness.mjs';
import { IO_CEILING, IO_CONCURRENCY, IO_LATENCY_MS } from './io-concurrency.mjs';

export async function horizontalScaling({ quick }) {
  // A quick run only checks that the machinery works: 1 and 2 processes, small rounds.
  const counts = quick ? [1, 2] : [1, 2, 4];
  const perProcess = quick ? 100 : 2_000;
  const warmupPerProcess = quick ? 50 : 500;
  const rounds = quick ? 1 : 3;
  const cores = cpus().length;
  return withRedis(async (redis) => {
    const server = redis.stopLater(await startDelayServer(IO_LATENCY_MS));
    const rows = [];
    for (const side of ['ours', 'raw']) {
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
          const results = [];
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
            // how evenly the processes shared the work (smallest share / largest share)
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
    const at = (side, processes) =>
      rows.find((row) => row.side === side && row.processes === processes)?.jobsPerSecond.median;
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
