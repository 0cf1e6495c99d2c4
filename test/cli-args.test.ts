/**
 * The CLI's shared argument parsing (src/cli/args.ts) and command runner (src/cli/command.ts):
 * one error style and exit code for bad arguments in every command, --help for every command.
 * In-process, with no Redis: bad arguments and --help never reach it.
 */
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  choice,
  choiceList,
  duration,
  fraction,
  integer,
  number,
  parseCommandArgs,
  UsageError,
} from '../src/cli/args.js';
import { commandContext, defineCommand, runCommand } from '../src/cli/command.js';
import type { CommandIO } from '../src/cli/io.js';
import { main } from '../src/cli/main.js';

function fakeIO(env: NodeJS.ProcessEnv = {}) {
  const text = { stdout: '', stderr: '' };
  const sink = (stream: 'stdout' | 'stderr') =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        text[stream] += chunk.toString('utf8');
        done();
      },
    });
  const io: CommandIO = { stdin: Readable.from([]), stdout: sink('stdout'), stderr: sink('stderr'), env };
  return { io, text };
}

describe('argument parsers', () => {
  it('integer: decimal digits within the range, else a UsageError naming the option and the text', () => {
    expect(integer('n', undefined)).toBeUndefined();
    expect(integer('n', '42', { min: 1, max: 100 })).toBe(42);
    expect(integer('n', ' 7 ')).toBe(7);
    for (const text of ['0', '101', '1.5', '1e2', '-3', '', 'x', '0x10']) {
      expect(() => integer('n', text, { min: 1, max: 100 }), text).toThrow(UsageError);
    }
    expect(() => integer('port', 'http', { max: 65_535, unit: 'a port' })).toThrow(
      '--port: expected a port from 0 to 65535, got "http"',
    );
    expect(() => integer('limit', '0', { min: 1 })).toThrow('--limit: expected an integer of at least 1, got "0"');
  });

  it('number and fraction: decimals within the range', () => {
    expect(number('s', '2.5', { max: 10 })).toBe(2.5);
    expect(fraction('f', '.25')).toBe(0.25);
    expect(fraction('f', '1')).toBe(1);
    for (const text of ['1.01', '-0.1', 'NaN', 'Infinity', '', '0x1']) {
      expect(() => fraction('f', text), text).toThrow('--f: expected a fraction from 0 to 1');
    }
  });

  it('duration: the configuration syntax, in milliseconds', () => {
    expect(duration('extend', '30m')).toBe(30 * 60_000);
    expect(duration('extend', '250')).toBe(250);
    expect(() => duration('extend', 'forever')).toThrow(
      '--extend: expected a duration such as 30m or 2h, got "forever"',
    );
  });

  it('choice and choiceList: only the allowed values', () => {
    const kinds = ['a', 'b', 'c'] as const;
    expect(choice('kind', 'b', kinds)).toBe('b');
    expect(() => choice('kind', 'z', kinds)).toThrow('--kind: expected one of a, b, c');
    expect(choiceList('kinds', 'a, c', kinds)).toEqual(['a', 'c']);
    expect(() => choiceList('kinds', 'a,z', kinds, 'kind')).toThrow(
      '--kinds: unknown kind z; expected some of a, b, c',
    );
    expect(() => choiceList('kinds', ' , ', kinds)).toThrow('(none given)');
  });

  it('parseCommandArgs: an unknown option or a missing value is a UsageError', () => {
    const options = { json: { type: 'boolean' }, limit: { type: 'string' } } as const;
    expect(parseCommandArgs(['--json', 'x'], options, true)).toMatchObject({
      values: { json: true },
      positionals: ['x'],
    });
    expect(() => parseCommandArgs(['--colour'], options, true)).toThrow(UsageError);
    expect(() => parseCommandArgs(['--limit'], options, true)).toThrow(UsageError);
    expect(() => parseCommandArgs(['extra'], options, false)).toThrow(UsageError);
  });
});

describe('runCommand', () => {
  const echo = defineCommand({
    name: 'echo',
    synopsis: ['aftercall echo [--times N] WORD'],
    summary: 'Prints WORD.',
    options: { times: { type: 'string' } },
    positionals: true,
    run({ values, positionals }, { io, config }) {
      const times = integer('times', values.times, { min: 1, max: 3 }) ?? 1;
      if (positionals[0] === 'config') config();
      if (positionals[0] === 'boom') throw new Error('it broke');
      io.stdout.write(`${positionals[0]} `.repeat(times));
      return 0;
    },
  });
  const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const { io, text } = fakeIO(env);
    return { code: await runCommand(echo, args, commandContext(io)), ...text };
  };

  it('runs the command with its parsed arguments', async () => {
    expect(await run(['--times', '2', 'hi'])).toEqual({ code: 0, stdout: 'hi hi ', stderr: '' });
  });

  it('prints generated help for --help and -h, exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      expect(await run([flag])).toEqual({
        code: 0,
        stdout: 'Usage:\n  aftercall echo [--times N] WORD\n      Prints WORD.\n',
        stderr: '',
      });
    }
  });

  it('exit 2 for bad arguments, naming the command and pointing at --help', async () => {
    for (const args of [['--times', '9', 'x'], ['--colour']]) {
      const result = await run(args);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^aftercall echo: .*\n\(see aftercall echo --help\)\n$/);
    }
  });

  it('exit 1 naming the variable for a bad environment, and exit 1 with the message for a failure', async () => {
    const bad = await run(['config'], { REDIS_URL: 'http://nowhere' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^aftercall: .*REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(await run(['boom'])).toEqual({ code: 1, stdout: '', stderr: 'aftercall echo: it broke\n' });
  });
});

describe('aftercall', () => {
  it('every command in the overview answers --help with exit 0 and its usage', async () => {
    const overview = fakeIO();
    expect(await main(['--help'], overview.io)).toBe(0);
    const names = [...new Set([...overview.text.stdout.matchAll(/^ {2}aftercall (\w+)/gm)].map((match) => match[1]!))];
    expect(names).toEqual(expect.arrayContaining(['demo', 'sandbox', 'worker', 'enqueue', 'status', 'dlq', 'sweep']));
    for (const name of names) {
      const { io, text } = fakeIO();
      expect(await main([name, '--help'], io), name).toBe(0);
      expect(text.stdout, name).toContain(`aftercall ${name}`);
      expect(text.stderr, name).toBe('');
    }
  });

  it('an unknown command exits 2 with the overview', async () => {
    const { io, text } = fakeIO();
    expect(await main(['fax'], io)).toBe(2);
    expect(text.stderr).toMatch(/^aftercall: unknown command "fax"\n\naftercall: durable/);
  });
});
