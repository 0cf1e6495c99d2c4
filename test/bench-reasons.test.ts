/**
 * The "Why met" and "Why missed" paragraphs of docs/PERFORMANCE.md follow from the figures
 * of the same run (bench/reasons.ts): a claim its figures contradict is refused, the
 * I/O-bound section never says "short of CPU" of a worker that was 29 % busy, and the
 * committed results (bench/results/latest.json) render into the committed report.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BENCHMARKS } from '../bench/benchmarks.js';
import { ioReasons, type IoConcurrency } from '../bench/io-concurrency.js';
import type { Entry } from '../bench/lib.js';
import { claim, ContradictedReasonError, reasonParagraph } from '../bench/reasons.js';
import { renderReport, type Results } from '../bench/report.js';

/** An I/O-bound result with the figures the issue quotes: 861 against 920 jobs/s, the worker 29 % busy. */
function ioResult(workerBusy: number, machine: number): Entry<IoConcurrency> {
  const side = (jobs: number, busy: number, msPerJob: number) => ({
    jobsPerSecond: { median: jobs, min: jobs, max: jobs, rounds: 3, values: [jobs] },
    efficiency: jobs / 1000,
    cpu: { worker: busy, redis: 0.2, server: 0.1, machine, allProcesses: machine, workerMsPerJob: msPerJob },
  });
  return {
    jobsPerRound: 3000,
    warmupJobs: 1000,
    concurrency: 100,
    latencyMs: 100,
    ceiling: 1000,
    redis: 'a private redis-server',
    logDestination: 'file',
    ours: side(861, workerBusy, 0.34),
    raw: side(920, 0.53, 0.58),
    ratio: 861 / 920,
    delivery: undefined as unknown as IoConcurrency['delivery'],
    goal: { metric: 'ratio', limit: 1, judged: true, met: false },
    ranAt: new Date().toISOString(),
  };
}

describe('reasons follow from the figures', () => {
  it('refuses a paragraph with a claim its figures contradict, naming the claim and its figures', () => {
    const busy = 0.29;
    expect(() =>
      reasonParagraph('Why missed.', [claim('The worker process runs short of CPU.', busy >= 0.85, 'busy 29 %')]),
    ).toThrow(ContradictedReasonError);
    expect(() => reasonParagraph('Why missed.', [claim('x', false, 'busy 29 %')])).toThrow(/busy 29 %/);
    expect(() => reasonParagraph('Why met.', [])).toThrow(/no claim/);
  });

  it('says "not the CPU" of a worker 29 % busy, and "short of CPU" only of one that is', () => {
    const idle = reasonParagraph('Why missed.', ioReasons(ioResult(0.29, 0.5))).join(' ');
    expect(idle).not.toMatch(/short of CPU/);
    expect(idle).toMatch(/not the worker's CPU: the worker process was busy 29 %/);
    expect(idle).toMatch(/had cores to spare \(50 % busy\)/);
    const busy = reasonParagraph('Why missed.', ioReasons(ioResult(0.95, 0.97))).join(' ');
    expect(busy).toMatch(/ran short of CPU: busy 95 %/);
    expect(busy).toMatch(/The machine was full/);
    expect(busy).not.toMatch(/not the worker's CPU/);
  });

  it('the committed results render into the committed docs/PERFORMANCE.md, reasons included', () => {
    const results = JSON.parse(
      readFileSync(new URL('../bench/results/latest.json', import.meta.url), 'utf8'),
    ) as Results;
    const committed = readFileSync(new URL('../docs/PERFORMANCE.md', import.meta.url), 'utf8');
    expect(renderReport(results, BENCHMARKS)).toBe(committed);
  });
});
