/**
 * Every benchmark, in report order: the runner (run.ts) runs them and the smoke test
 * (test/bench-smoke.test.ts) checks the figures each declares.
 *
 * Adding a benchmark: one file in bench/ exporting a Benchmark (lib.ts: its name, the
 * figures a run must report, run() and its report section), and one line here. Nothing
 * else changes: results, docs/PERFORMANCE.md, --only and the smoke test follow this list.
 */
import { destinationRate } from './destination-rate.js';
import { enqueueLatency } from './enqueue-latency.js';
import { horizontalScaling } from './horizontal-scaling.js';
import { httpApi } from './http-api.js';
import { ioConcurrency } from './io-concurrency.js';
import type { Benchmark } from './lib.js';
import { memory } from './memory.js';
import { producerImport } from './producer-import.js';
import { redisCluster } from './redis-cluster.js';
import { redisCost } from './redis-cost.js';
import { sweeperScaling } from './sweeper-scaling.js';
import { throughput } from './throughput.js';

export const BENCHMARKS: readonly Benchmark[] = [
  enqueueLatency,
  sweeperScaling,
  throughput,
  ioConcurrency,
  horizontalScaling,
  redisCost,
  destinationRate,
  redisCluster,
  memory,
  producerImport,
  httpApi,
];
