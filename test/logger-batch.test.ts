/**
 * The logger's standard output is written once per turn of the event loop (logger.ts
 * TurnBatch): every line still arrives, in order, also when the process exits in the
 * turn that logged it.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const LOGGER = new URL('../dist/src/worker/logger.js', import.meta.url).href;

function run(script: string): Record<string, unknown>[] {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('createLogger on standard output', () => {
  it('writes every line, in order, across turns and at process.exit in the same turn', () => {
    const lines = run(`
      import { createLogger } from ${JSON.stringify(LOGGER)};
      const logger = createLogger();
      for (let i = 0; i < 3; i += 1) logger.info({ i }, 'first turn');
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (let i = 3; i < 2000; i += 1) logger.info({ i }, 'later turn');
      process.exit(0);
    `);
    expect(lines.map((line) => line.i)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(lines[0]).toMatchObject({ level: 'info', name: 'aftercall', msg: 'first turn' });
  });

  it('writes the lines of a turn that ends in an uncaught error', () => {
    let out = '';
    try {
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { createLogger } from ${JSON.stringify(LOGGER)};
           createLogger().error({ i: 1 }, 'before the crash');
           throw new Error('crash');`,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
    } catch (error) {
      out = (error as { stdout: string }).stdout;
    }
    expect(JSON.parse(out.trim())).toMatchObject({ msg: 'before the crash', i: 1 });
  });
});
