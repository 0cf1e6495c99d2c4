/**
 * What every benchmark shares: the shape of a benchmark (bench/benchmarks.ts lists them),
 * statistics over samples and rounds, and the machine a run measured.
 */
import { cpus, totalmem } from 'node:os';
import { redis } from '../test/helpers/redis.js';

export interface RunOptions {
  /** Small sizes: checks the machinery; its timings mean nothing and no goal is judged. */
  quick: boolean;
}

export interface Goal {
  metric: string;
  limit: number;
  /** False in a quick run; the runner sets it for a full run that leaves it out. */
  judged?: boolean;
  /** null when not judged. */
  met: boolean | null;
}

/** What every benchmark's result has; the rest is its own. */
export interface Measured {
  goal?: Goal;
}

/** A result as bench/results/latest.json keeps it. */
export type Entry<R extends Measured = Measured> = R & {
  ranAt: string;
  seconds?: number;
  /** Kept from an earlier run by a run with --only. */
  fromEarlierRun?: boolean;
  /** The machine's 1-minute load average when the benchmark started and ended (it is shared). */
  loadAverage?: [number, number];
};

export interface Benchmark<R extends Measured = Measured> {
  /** Its key in the results and its --only name. */
  readonly name: string;
  /**
   * Paths into its result (`ours.p99.median`) of the numbers any run must report, finite
   * and above zero: test/bench-smoke.test.ts checks them in a quick run.
   */
  readonly figures: readonly string[];
  run(options: RunOptions): Promise<R>;
  /** Its section of docs/PERFORMANCE.md (markdown lines). */
  report(entry: Entry<R>): string[];
}

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1)!,
  };
}

/** Median and spread (min..max) of per-round values. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  rounds: number;
}

export function acrossRounds(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), min: sorted[0]!, max: sorted.at(-1)!, rounds: values.length };
}

/** The order of the sides in round `round`: as given in even rounds, reversed in odd ones, so drift in the machine hits both alike. */
export function alternating<Side extends string>(round: number, sides: readonly Side[]): Side[] {
  return round % 2 === 0 ? [...sides] : [...sides].reverse();
}

export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  node: string;
  redis: string;
  date: string;
}

export async function machine(): Promise<Machine> {
  const client = redis();
  const info = await client.info('server');
  client.disconnect();
  const cpu = cpus();
  return {
    cores: cpu.length,
    cpu: cpu[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    date: new Date().toISOString(),
  };
}

export function log(message: string): void {
  process.stderr.write(`  ${message}\n`);
}
