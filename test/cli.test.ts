import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN } from './helpers/child-worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { REDIS_ENV, redis, removePrefix, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('cli');
const client = redis();
const root = fileURLToPath(new URL('..', import.meta.url));

afterAll(async () => {
  await removePrefix(client, prefix);
  client.disconnect();
});

function run(command: string, args: string[], input = '', env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        ...REDIS_ENV,
        AFTERCALL_PREFIX: prefix,
        LOG_LEVEL: 'silent',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
const aftercall = (args: string[], input?: string, env?: Record<string, string>) =>
  run(process.execPath, [BIN, ...args], input, env);

describe('the aftercall command', () => {
  it('works through npx in a checkout', async () => {
    // --ignore-scripts: the first npx in a fresh checkout would run the `prepare` build
    // again, rewriting dist/ under the worker processes of tests running alongside.
    const { code, stdout } = await run('npx', ['--no-install', '--ignore-scripts', 'aftercall', '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/aftercall worker/);
  });

  it('enqueue takes NDJSON, prints one result per accepted line and each rejected line with its number', async () => {
    const lines = [
      JSON.stringify(resolvedOutcome('cli-1')),
      '{"conversationId":"cli-2","endedAt":"yesterday","outcome":"resolved","customer":{"id":"c"}}',
      '',
      'not json',
      JSON.stringify(bookedOutcome('cli-3')),
    ].join('\n');
    const { code, stdout, stderr } = await aftercall(['enqueue', '-'], lines);
    expect(code).toBe(1);
    const results = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { conversationId: string });
    expect(results.map((result) => result.conversationId)).toEqual(['cli-1', 'cli-3']);
    expect(stderr).toMatch(
      /^line 2: rejected: endedAt: expected the end of the conversation as an ISO-8601 date-time/m,
    );
    expect(stderr).toMatch(/^line 4: not valid JSON/m);
    expect(stderr).not.toMatch(/line 1|line 3|line 5/);
  });

  it('enqueue delivers every result line to a slow reader before it exits', async () => {
    // Writes to a pipe are asynchronous: exiting while the reader lags would drop the
    // result lines still queued (the outcomes were accepted, but the caller never hears so).
    const count = 400;
    const input = Array.from({ length: count }, (_, index) =>
      JSON.stringify(resolvedOutcome(`cli-slow-${index}`)),
    ).join('\n');
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'enqueue', '-'], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', ...REDIS_ENV, AFTERCALL_PREFIX: prefix, LOG_LEVEL: 'silent' },
      });
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk;
        child.stdout.pause();
        setTimeout(() => child.stdout.resume(), 40);
      });
      child.on('close', (exitCode) => resolve({ code: exitCode, stdout: text }));
      child.stdin.end(input);
    });
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(count);
  });

  it('enqueue takes one pretty-printed outcome from a file and exits 0', async () => {
    const { code, stdout, stderr } = await aftercall(['enqueue', '--shift-to-now', 'examples/booked.json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as { tasks: { type: string; expired: boolean }[] };
    expect(result.tasks.map((task) => task.type)).toEqual([
      'send_email',
      'update_crm',
      'schedule_reminder',
      'follow_up_survey',
    ]);
    expect(result.tasks.every((task) => !task.expired)).toBe(true);
  });

  it('status prints a JSON array, empty with exit 0 for an unknown conversation', async () => {
    const known = await aftercall(['status', 'cli-1', '--json']);
    expect(known.code).toBe(0);
    expect(
      (JSON.parse(known.stdout) as { type: string; state: string }[]).map((entry) => [entry.type, entry.state]),
    ).toEqual([
      ['update_crm', 'waiting'],
      ['update_ticket', 'waiting'],
    ]);
    const unknown = await aftercall(['status', 'nobody', '--json']);
    expect(unknown).toMatchObject({ code: 0, stdout: '[]\n' });
    const table = await aftercall(['status', 'cli-1']);
    expect(table.stdout).toMatch(/^type\s+state\s+attempts/);
  });

  it('dlq list prints a JSON array, and explains bad arguments', async () => {
    // nothing enqueued here has expired: a sweep dead-letters nothing, and the queue stays empty
    const sweep = await aftercall(['sweep']);
    expect(sweep.code).toBe(0);
    expect(Object.values((JSON.parse(sweep.stdout) as { expired: Record<string, number> }).expired)).toEqual(
      Array(6).fill(0),
    );
    const empty = await aftercall(['dlq', 'list', '--json']);
    expect(empty).toMatchObject({ code: 0, stdout: '[]\n' });
    const bad = await aftercall(['dlq', 'list', '--type', 'fax']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--type: expected one of send_email/);
  });

  it('exits 1 naming the variable when the configuration is invalid', async () => {
    const { code, stderr } = await aftercall(['status', 'x'], '', { REDIS_URL: 'http://localhost:6379' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
  });
});
