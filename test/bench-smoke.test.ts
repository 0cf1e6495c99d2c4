/**
 * The benchmark harness works end to end: `node --import tsx bench/run.ts --quick` runs every
 * benchmark of bench/benchmarks.ts at small sizes, exits 0, and writes
 * bench/results/quick.json with the figures each benchmark declares (finite, above zero).
 * No timing is judged here (a quick run judges no goal either); it needs dist/ built (the
 * worker processes and the import benchmark run the built package), Redis at REDIS_URL
 * and, for the process-level benchmarks, redis-server on PATH (they fall back to REDIS_URL
 * without it).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BENCHMARKS } from '../bench/benchmarks.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const QUICK_RESULTS = new URL('../bench/results/quick.json', import.meta.url);

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
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick'], {
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
    expect(Object.keys(results.benchmarks)).toEqual(BENCHMARKS.map((benchmark) => benchmark.name));

    for (const { name, figures } of BENCHMARKS) {
      const entry = results.benchmarks[name];
      expect(entry?.error, `${name} failed`).toBeUndefined();
      expect(figures.length, `${name} declares no figures`).toBeGreaterThan(0);
      for (const path of figures) {
        const value = at(entry, path);
        expect(
          typeof value === 'number' && Number.isFinite(value) && value > 0,
          `${name}: ${path} = ${String(value)}`,
        ).toBe(true);
      }
      // A quick run judges no goal: its sizes are too small for timings to mean anything.
      // (A benchmark may have none: producer-import reports costs, it sets no target.)
      const goal = entry?.goal as { judged?: boolean; met?: unknown } | undefined;
      if (goal) {
        expect(goal.judged, `${name}: goal judged in a quick run`).toBe(false);
        expect(goal.met ?? null).toBeNull();
      }
    }
  }, 420_000);
});
