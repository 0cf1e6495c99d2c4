import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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

describe('README layout', () => {
  // The tree in the Layout section: one folder per line, `name/` indented two spaces per level.
  const section = readme.slice(readme.indexOf('## Layout'));
  const tree = section
    .slice(0, section.indexOf('\n## ') === -1 ? undefined : section.indexOf('\n## '))
    .split('```')[1]!;
  const named: string[] = [];
  const path: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^( *)([\w.-]+)\/(?:\s|$)/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 2;
    expect(Number.isInteger(depth) && depth <= path.length, `indentation of ${JSON.stringify(line)}`).toBe(true);
    path.length = depth;
    path.push(match[2]!);
    named.push(path.join('/'));
  }
  const root = new URL('..', import.meta.url);
  const foldersUnder = (dir: string): string[] =>
    readdirSync(new URL(dir, root), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .flatMap((entry) => [`${dir}/${entry.name}`, ...foldersUnder(`${dir}/${entry.name}`)]);

  it('names only folders that exist', () => {
    expect(named).toContain('src/contract');
    for (const folder of named) {
      const url = new URL(folder, root);
      expect(existsSync(url) && statSync(url).isDirectory(), `${folder}/ is in the README's Layout`).toBe(true);
    }
  });

  it('names every folder under src/ and dev/', () => {
    for (const folder of [...foldersUnder('src'), ...foldersUnder('dev')]) {
      expect(named, `${folder}/ is missing from the README's Layout`).toContain(folder);
    }
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
