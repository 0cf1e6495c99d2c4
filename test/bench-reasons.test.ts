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
import { phasesOf, SEGMENTS, type LatencyBreakdown, type Phases } from '../bench/latency-breakdown.js';
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

  it("tells a round's start from the pace after it: the first wave is the jobs fetched before any finished", () => {
    // 4 slots: a first wave of 4 moved to active at 0..3 ms, each job 110 ms, then 100 ms cycles.
    const jobs: [number, number][] = [];
    for (let slot = 0; slot < 4; slot += 1) {
      let at = slot;
      for (let cycle = 0; cycle < 6; cycle += 1) {
        const length = cycle < 3 ? 110 : 100;
        jobs.push([at, at + length]);
        at += length;
      }
    }
    expect(phasesOf(jobs)).toEqual({ wave: 4, startJobs: 12, startCycle: 110, restJobs: 12, restCycle: 100 });
    expect(phasesOf([])).toBeUndefined();
  });

  it("says the round's start made the difference only when the pace after it met 95 %", () => {
    const breakdown = (phases: Phases): LatencyBreakdown => {
      const mean = Object.fromEntries(
        SEGMENTS.map((s) => [s, s === 'receiver' ? 100.5 : 2]),
      ) as LatencyBreakdown['mean'];
      return { jobs: 3000, mean, p99: mean, cycle: 108.5, scriptCallsPerJob: 1, phases };
    };
    const withPhases = (restCycle: number) => {
      const io = ioResult(0.3, 0.4);
      io.ours.breakdown = breakdown({ wave: 100, startJobs: 300, startCycle: 125, restJobs: 2700, restCycle });
      io.raw.breakdown = breakdown({ wave: 100, startJobs: 300, startCycle: 140, restJobs: 2700, restCycle: 115 });
      return reasonParagraph('Why missed.', ioReasons(io)).join(' ');
    };
    const fast = withPhases(104.2);
    expect(fast).toMatch(/first 100 jobs one by one before it starts any/);
    expect(fast).toMatch(/the round's start made the difference/);
    expect(fast).not.toMatch(/not the whole of the gap/);
    const slow = withPhases(107.9);
    expect(slow).toMatch(/\(107\.9 ms\): the start is not the whole of the gap/);
    expect(slow).not.toMatch(/made the difference/);
  });

  it('the committed results render into the committed docs/PERFORMANCE.md, reasons included', () => {
    const results = JSON.parse(
      readFileSync(new URL('../bench/results/latest.json', import.meta.url), 'utf8'),
    ) as Results;
    const committed = readFileSync(new URL('../docs/PERFORMANCE.md', import.meta.url), 'utf8');
    expect(renderReport(results, BENCHMARKS)).toBe(committed);
  });
});
