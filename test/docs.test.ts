import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configVariables } from '../src/config/environment.js';
import { taskTypes } from '../src/tasks/catalog.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every environment variable the code reads', () => {
    for (const { name } of configVariables()) {
      const generic = name
        .replace(/^TASK_[A-Z_]+?_(ENABLED|ATTEMPTS)$/, 'TASK_<TYPE>_$1')
        .replace(/^CHANNEL_[A-Z_]+$/, 'CHANNEL_<TYPE>');
      expect(readme, name).toContain(generic === name ? name : generic);
    }
  });

  it('lists every task type of the catalog', () => {
    for (const type of taskTypes) expect(readme).toContain(`\`${type}\``);
  });

  it('gives the test command CI runs', () => {
    expect(readme).toMatch(/`npm test`/);
    expect(readFileSync(new URL('../.ci/run', import.meta.url), 'utf8')).toMatch(/^npm test$/m);
  });
});

describe('README performance table', () => {
  // The headline figures must be the ones the committed benchmark run measured: a rerun of
  // `npm run bench` that changes a ratio or a verdict fails here until the README follows.
  const results = JSON.parse(readFileSync(new URL('../bench/results/latest.json', import.meta.url), 'utf8')).benchmarks;
  const section = readme.slice(readme.indexOf('## Performance'), readme.indexOf('## Configuration'));
  const rowOf = (label: string) => {
    const row = section.split('\n').find((line) => line.startsWith(`| ${label}`));
    expect(row, `README performance row "${label}"`).toBeDefined();
    return row!;
  };
  const times = (value: number) => `${value.toFixed(2)}×`;
  // biome-ignore lint/suspicious/noExplicitAny: bench/results/latest.json read back as JSON
  const cases: Array<[label: string, benchmark: string, figures: (result: any) => string[]]> = [
    ['enqueue of a five-task outcome, p99', 'enqueue-latency', (r) => [times(r.ratioP99)]],
    ['processing throughput', 'throughput', (r) => [times(r.ratio)]],
    ['I/O-bound', 'io-concurrency', (r) => [`${(r.ours.efficiency * 100).toFixed(1)} % of 1,000`]],
    ['horizontal scaling', 'horizontal-scaling', (r) => [times(r.speedup2), times(r.rawSpeedup2)]],
    ['sweep of 1,000 expired', 'sweeper-scaling', (r) => [times(r.ratios['waiting-oldest']), times(r.ratios.delayed)]],
    ['Redis commands per task', 'redis-cost', (r) => [times(r.worstRatio)]],
    ['worker memory', 'memory', () => []],
  ];
  for (const [label, benchmark, figures] of cases) {
    it(`${label}: figures and verdict match bench/results/latest.json`, () => {
      const row = rowOf(label);
      const result = results[benchmark];
      for (const figure of figures(result)) expect(row, label).toContain(figure);
      const verdict = row.split('|').at(-2)!;
      expect(verdict, label).toMatch(result.goal.met ? /: met/ : /: missed/);
    });
  }
});
