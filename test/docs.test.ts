import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configVariables } from '../src/config.js';
import { taskTypes } from '../src/tasks/catalog.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every environment variable the code reads', () => {
    for (const { name } of configVariables()) {
      const generic = name.replace(/^TASK_[A-Z_]+?_(ENABLED|ATTEMPTS)$/, 'TASK_<TYPE>_$1').replace(/^CHANNEL_[A-Z_]+$/, 'CHANNEL_<TYPE>');
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
