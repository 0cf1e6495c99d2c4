/**
 * npm run bench [-- --quick] [-- --only=name,name] [-- --report]
 *
 * Runs the benchmarks of bench/benchmarks.ts, each comparison against raw BullMQ (or a
 * bare equivalent) measured in the same run, and writes bench/results/latest.json and
 * docs/PERFORMANCE.md. A --quick run writes bench/results/quick.json only and judges no
 * goal: its sizes are too small to time. --report writes docs/PERFORMANCE.md again from
 * latest.json without running anything (after a change to a section's text).
 *
 * Adding a benchmark: one file exporting a Benchmark, and its line in bench/benchmarks.ts
 * (the registry lives there, not here, so the smoke test can read it without running it).
 *
 * Runs under tsx (TypeScript on Node 20): the benchmarks and the code they call in this
 * process come from the TypeScript sources, as in the tests; worker child processes run the
 * built package (`npm run bench` builds first; see worker-process.ts). The enqueue and
 * sweeper benchmarks use the Redis at REDIS_URL; the process-level ones start a private
 * redis-server each (harness.ts), falling back to REDIS_URL without one.
 *
 * A full run with --only replaces those benchmarks' entries in latest.json and keeps the
 * others (when they were measured on the same machine), so the report stays whole; each
 * section says when it was measured.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { BENCHMARKS } from './benchmarks.js';
import { machine, type Machine } from './lib.js';
import { renderReport, type Failed, type Results } from './report.js';

const RESULTS_DIR = new URL('./results/', import.meta.url);
const LATEST = new URL('./results/latest.json', import.meta.url);
const PERFORMANCE = new URL('../docs/PERFORMANCE.md', import.meta.url);

const quick = process.argv.includes('--quick');
const reportOnly = process.argv.includes('--report');
const onlyArg = process.argv.find((arg) => arg.startsWith('--only='));
const only = onlyArg ? onlyArg.slice('--only='.length).split(',').filter(Boolean) : undefined;
const names = BENCHMARKS.map((benchmark) => benchmark.name);

const unknown = (only ?? []).filter((name) => !names.includes(name));
if (unknown.length) {
  process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')}; known: ${names.join(', ')}\n`);
  process.exit(2);
}

function writeReport(results: Results): void {
  const text = renderReport(results, BENCHMARKS);
  if (!results.quick) {
    mkdirSync(new URL('./', PERFORMANCE), { recursive: true });
    writeFileSync(PERFORMANCE, text);
  }
  process.stdout.write(text);
}

if (reportOnly) {
  writeReport(JSON.parse(readFileSync(LATEST, 'utf8')) as Results);
  process.exit(0);
}

const resultsFile = quick ? new URL('./quick.json', RESULTS_DIR) : LATEST;
const results: Results = { quick, machine: await machine(), benchmarks: {} };
const failures: string[] = [];
for (const benchmark of BENCHMARKS) {
  const { name } = benchmark;
  if (only && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name}${quick ? ' (quick)' : ''}\n`);
  const started = performance.now();
  // The machine is shared: its load average before and after, next to every figure.
  const loadBefore = loadavg()[0]!;
  try {
    const result = await benchmark.run({ quick });
    // A quick run's sizes are too small for its timings to mean anything: no verdicts.
    if (quick && result.goal) result.goal = { ...result.goal, judged: false, met: null };
    else if (result.goal && result.goal.judged === undefined) result.goal = { ...result.goal, judged: true };
    results.benchmarks[name] = {
      ...result,
      ranAt: new Date().toISOString(),
      seconds: (performance.now() - started) / 1000,
      loadAverage: [loadBefore, loadavg()[0]!],
    };
  } catch (error) {
    failures.push(name);
    process.stderr.write(`bench: ${name} failed: ${(error as Error).stack ?? String(error)}\n`);
    results.benchmarks[name] = {
      error: String((error as Error).message ?? error),
      ranAt: new Date().toISOString(),
    } satisfies Failed;
  }
}

// A partial full run keeps the other benchmarks' last results from the same machine.
const sameMachine = (a: Machine | undefined, b: Machine) =>
  (['cores', 'cpu', 'memoryGiB', 'node', 'redis'] as const).every((key) => a?.[key] === b[key]);
if (!quick && only && existsSync(resultsFile)) {
  try {
    const previous = JSON.parse(readFileSync(resultsFile, 'utf8')) as Results;
    if (sameMachine(previous.machine, results.machine)) {
      for (const [name, entry] of Object.entries(previous.benchmarks ?? {})) {
        if (!(name in results.benchmarks) && names.includes(name) && !('error' in entry)) {
          // (entries written before `ranAt` existed date from the run itself)
          results.benchmarks[name] = { ...entry, ranAt: entry.ranAt ?? previous.machine.date, fromEarlierRun: true };
        }
      }
      results.benchmarks = Object.fromEntries(
        names.filter((name) => name in results.benchmarks).map((name) => [name, results.benchmarks[name]!]),
      );
    }
  } catch {
    // an unreadable previous file is replaced
  }
}

mkdirSync(RESULTS_DIR, { recursive: true });
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
writeReport(results);
if (failures.length) {
  process.stderr.write(`bench: failed: ${failures.join(', ')}\n`);
  process.exitCode = 1;
}
