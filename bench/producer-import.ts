/**
 * Producer entry point, import cost: what `import { createProducer } from 'aftercall/producer'`
 * costs a voice-agent server at start-up, against importing the whole package (`aftercall`:
 * the worker, delivery and providers, the metrics server as well).
 *
 * Each sample is a fresh `node` (no loader) that imports the built package by name, as a
 * dependent does (test/helpers/import-in-child.ts); the sides alternate. Per sample: wall
 * and CPU time of the `await import()` itself (Node's own start-up left out), the heap in
 * use after a full GC before and after it, and RSS after. One more child per side, with
 * the module recorder on (it adds a thread, so it is not timed), counts the modules loaded.
 * Which modules the producer entry may load is checked by test/producer-entry.test.ts.
 */
import { importInChild } from '../test/helpers/import-in-child.js';
import { acrossRounds, alternating, log, type Benchmark, type Entry, type Measured, type Spread } from './lib.js';
import { fmt, measuredAt, plural, range } from './report.js';

const SIDES = { producer: 'aftercall/producer', full: 'aftercall' } as const;
type SideName = keyof typeof SIDES;
const MiB = 2 ** 20;

interface SideResult {
  specifier: string;
  importMs: Spread & { values: number[] };
  cpuMs: Spread;
  heapAddedMiB: Spread;
  rssMiB: Spread;
  /** Modules loaded by the import, ES and CommonJS (node: built-ins left out). */
  modules: number;
  commonJsModules: number;
}

/** No goal: a report of what the entry point costs, next to the whole package. */
export interface ProducerImport extends Measured {
  samplesPerSide: number;
  /** Heap in use in a fresh process before the import (median, MiB). */
  baselineHeapMiB: number;
  producer: SideResult;
  full: SideResult;
  /** producer / full, of the medians. */
  ratios: { importMs: number; cpuMs: number; heapAdded: number; rss: number; modules: number };
}

async function run({ quick }: { quick: boolean }): Promise<ProducerImport> {
  // Quick: one sample per side, enough to check the machinery (and the figures exist).
  const samples = quick ? 1 : 15;
  const measured: Record<SideName, Awaited<ReturnType<typeof importInChild>>[]> = { producer: [], full: [] };
  for (let sample = 0; sample < samples; sample += 1) {
    for (const side of alternating(sample, ['producer', 'full'] as const)) {
      measured[side].push(await importInChild(SIDES[side]));
    }
  }
  const summary = async (side: SideName): Promise<SideResult> => {
    const results = measured[side];
    const recorded = await importInChild(SIDES[side], { record: true });
    const importMs = results.map((result) => result.importMs);
    return {
      specifier: SIDES[side],
      importMs: { ...acrossRounds(importMs), values: importMs },
      cpuMs: acrossRounds(results.map((result) => result.cpuMs)),
      heapAddedMiB: acrossRounds(results.map((result) => result.heapAdded / MiB)),
      rssMiB: acrossRounds(results.map((result) => result.rss / MiB)),
      modules: recorded.modules!.length,
      commonJsModules: recorded.commonJsModules,
    };
  };
  const producer = await summary('producer');
  const full = await summary('full');
  log(
    `producer-import: ${producer.importMs.median.toFixed(0)} ms, ${producer.heapAddedMiB.median.toFixed(1)} MiB, ${producer.modules} modules; full package ${full.importMs.median.toFixed(0)} ms, ${full.heapAddedMiB.median.toFixed(1)} MiB, ${full.modules} modules`,
  );
  const all = [...measured.producer, ...measured.full];
  return {
    samplesPerSide: samples,
    baselineHeapMiB: acrossRounds(all.map((result) => result.heapBefore / MiB)).median,
    producer,
    full,
    ratios: {
      importMs: producer.importMs.median / full.importMs.median,
      cpuMs: producer.cpuMs.median / full.cpuMs.median,
      heapAdded: producer.heapAddedMiB.median / full.heapAddedMiB.median,
      rss: producer.rssMiB.median / full.rssMiB.median,
      modules: producer.modules / full.modules,
    },
  };
}

function report(p: Entry<ProducerImport>): string[] {
  const row = (label: string, pick: (side: SideResult) => Spread, ratio: number, digits: number) =>
    `| ${label} | ${range(pick(p.producer), digits)} | ${range(pick(p.full), digits)} | ${fmt(ratio)} |`;
  return [
    '## Producer entry point: import cost',
    '',
    ...measuredAt(p),
    "What a voice-agent server pays at start-up for `import { createProducer } from 'aftercall/producer'`, against importing",
    'the whole package (`aftercall`: worker, delivery, provider SDKs, metrics server). Each sample is a fresh `node` that',
    `imports the built package by name, ${plural(p.samplesPerSide, 'sample')} per side, alternating: time and CPU of the \`await import()\``,
    "itself (Node's own start-up left out), heap in use after a full GC before and after it, RSS after. Modules: every ES and",
    'CommonJS module the import loaded, counted in one more child per side.',
    '',
    '| | aftercall/producer | aftercall | ratio |',
    '|---|---|---|---|',
    row('import (ms)', (side) => side.importMs, p.ratios.importMs, 0),
    row('CPU (ms)', (side) => side.cpuMs, p.ratios.cpuMs, 0),
    row('heap added (MiB)', (side) => side.heapAddedMiB, p.ratios.heapAdded, 2),
    row('RSS after (MiB)', (side) => side.rssMiB, p.ratios.rss, 1),
    `| modules loaded | ${p.producer.modules} | ${p.full.modules} | ${fmt(p.ratios.modules)} |`,
    '',
    `A fresh process holds ${fmt(p.baselineHeapMiB, 1)} MiB of heap before the import. The producer entry loads no worker, delivery,`,
    "provider SDK, HTTP framework, CLI or dev/ code, and takes BullMQ's Queue from its own module rather than BullMQ's",
    'index, which would also load the Worker class (test/producer-entry.test.ts checks the module graph). Most of what',
    "remains is shared with the full package: zod and the outcome contract, the task catalog, ioredis, BullMQ's Queue and",
    'its scripts, prom-client.',
    '',
  ];
}

export const producerImport: Benchmark<ProducerImport> = {
  name: 'producer-import',
  figures: [
    'producer.importMs.median',
    'full.importMs.median',
    'producer.cpuMs.median',
    'producer.heapAddedMiB.median',
    'full.heapAddedMiB.median',
    'producer.modules',
    'full.modules',
    'ratios.heapAdded',
  ],
  run,
  report,
};
