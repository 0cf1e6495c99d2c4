/**
 * The benchmark harness works end to end: `node bench/run.mjs --quick` runs every benchmark
 * at small sizes, exits 0, and writes bench/results/quick.json with numbers for each. No
 * timing is judged here (a quick run judges no goal either); it needs dist/ built, Redis
 * at REDIS_URL and, for the process-level benchmarks, redis-server on PATH (they fall back
 * to REDIS_URL without it).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const QUICK_RESULTS = new URL('../bench/results/quick.json', import.meta.url);

/** Every benchmark, and numbers each must report (paths into its entry). */
const EXPECTED: Record<string, string[]> = {
  'enqueue-latency': [
    'ours.p50.median',
    'ours.p99.median',
    'raw.p50.median',
    'raw.p99.median',
    'ratioP99',
    'cost.ours.redisUsPerCall',
    'cost.raw.clientCpuUsPerCall',
  ],
  'sweeper-scaling': [
    'batchSize',
    'rows.0.ms.median',
    'rows.0.redisCallsPerSweep',
    'ratios.waiting-oldest',
    'ratios.delayed',
  ],
  throughput: [
    'ours.median',
    'raw.median',
    'ratio',
    'cpu.ours.workerMsPerJob',
    'cpu.raw.workerMsPerJob',
    'breakdown.logLine',
    'breakdown.jobValidation',
    'breakdown.jobValidationUncompiled',
  ],
  'io-concurrency': [
    'ours.jobsPerSecond.median',
    'raw.jobsPerSecond.median',
    'ours.efficiency',
    'ratio',
    'delivery.fetchMsPerRequest',
    'delivery.fetchRequestsPerSecond',
  ],
  'horizontal-scaling': ['rows.0.jobsPerSecond.median', 'rows.1.jobsPerSecond.median', 'speedup2', 'rawSpeedup2'],
  'redis-cost': [
    'ours.backlog.topLevel',
    'ours.backlog.scriptCalls',
    'ours.backlog.allCommands',
    'ours.trickle.topLevel',
    'ours.trickle.allCommands',
    'raw.backlog.topLevel',
    'raw.backlog.allCommands',
    'raw.trickle.topLevel',
    'ratios.backlog.allCommands',
    'worstRatio',
  ],
  memory: [
    'redisMemory.completed.ours.perTaskKeys',
    'redisMemory.completed.ours.usedMemoryPerTask',
    'redisMemory.completed.raw.perTaskKeys',
    'redisMemory.deadLetter.ours.perTaskKeys',
    'redisMemory.deadLetter.raw.perTaskKeys',
    'workerRss.rssMiB.min',
    'workerRss.rssMiB.max',
  ],
};

function at(value: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>(
      (node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined),
      value,
    );
}

function runQuick(): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/run.mjs', '--quick'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('benchmark harness (npm run bench -- --quick)', () => {
  it('runs every benchmark at small sizes and records numbers for each', async () => {
    const started = Date.now();
    const { code, stderr } = await runQuick();
    expect(code, stderr.slice(-4_000)).toBe(0);

    const results = JSON.parse(readFileSync(QUICK_RESULTS, 'utf8')) as {
      quick: boolean;
      machine: { date: string; cores: number };
      benchmarks: Record<string, Record<string, unknown>>;
    };
    expect(results.quick).toBe(true);
    expect(Date.parse(results.machine.date)).toBeGreaterThanOrEqual(started - 1_000);
    expect(results.machine.cores).toBeGreaterThan(0);
    expect(Object.keys(results.benchmarks).sort()).toEqual(Object.keys(EXPECTED).sort());

    for (const [name, paths] of Object.entries(EXPECTED)) {
      const entry = results.benchmarks[name];
      expect(entry?.error, `${name} failed`).toBeUndefined();
      for (const path of paths) {
        const value = at(entry, path);
        expect(
          typeof value === 'number' && Number.isFinite(value) && value > 0,
          `${name}: ${path} = ${String(value)}`,
        ).toBe(true);
      }
      // A quick run judges no goal: its sizes are too small for timings to mean anything.
      const goal = entry?.goal as { judged?: boolean; met?: unknown } | undefined;
      expect(goal?.judged, `${name}: goal judged in a quick run`).toBe(false);
      expect(goal?.met ?? null).toBeNull();
    }
  }, 300_000);
});
