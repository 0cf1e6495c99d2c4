/**
 * `aftercall demo --scenario rate-limit | outage`, through the real binary at a small size:
 * the exit code, the progress (each destination's requests per second and circuit state)
 * and the summary that proves the outcome (nothing exhausted because of the provider; what
 * each destination saw, from the sandbox's side). Needs dist/ built and Redis at REDIS_URL.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BIN } from './helpers/child-worker.js';
import { REDIS_URL } from './helpers/redis.js';

const TYPES = /^(send_email|update_crm|schedule_reminder|update_ticket|route_callback|follow_up_survey)\s/;

const demo = (args: string[]) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, 'demo', ...args], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

/** The per-type rows of the summary: [created, completed, retried, expired, exhausted, terminal, invalid]. */
function rows(stdout: string): number[][] {
  return stdout
    .split('\n')
    .filter((line) => TYPES.test(line))
    .map((line) => line.split(/\s+/).slice(1, 8).map(Number));
}

/** The destinations table's row for `destination`, by column name. */
function destinationRow(stdout: string, destination: string): Record<string, string> {
  const lines = stdout.split('\n');
  const header = lines.find((line) => line.startsWith('destination '))!;
  const columns = header.split(/\s{2,}/);
  const row = lines.find((line) => line.startsWith(`${destination} `))!;
  return Object.fromEntries(row.split(/\s{2,}/).map((value, index) => [columns[index], value]));
}

function expectAccountedWithNothingExhausted(stdout: string) {
  const created = Number(/enqueued (\d+) tasks from 30 conversations/.exec(stdout)?.[1]);
  expect(created).toBeGreaterThan(30);
  const table = rows(stdout);
  expect(table).toHaveLength(6);
  for (const [createdCount, completed, , expired, exhausted, terminal, invalid] of table) {
    expect(exhausted).toBe(0);
    expect(completed! + expired! + exhausted! + terminal! + invalid!).toBe(createdCount);
  }
  expect(table.reduce((sum, row) => sum + row[0]!, 0)).toBe(created);
  expect(stdout).toContain('nothing exhausted because of the provider');
  expect(stdout).toContain(`every one of the ${created} tasks is accounted for`);
}

describe('aftercall demo --scenario', () => {
  it('rate-limit: Resend at 3/s, the progress shows its rate and circuit, nothing exhausted', async () => {
    const { code, stdout, stderr } = await demo(['--scenario', 'rate-limit', '--conversations', '30']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('scenario rate-limit: Resend allows 3 requests per 1 s');
    // Progress: requests per second and circuit state per destination.
    expect(stdout).toMatch(/\| .*resend \d+\/s closed/);
    expectAccountedWithNothingExhausted(stdout);
    const resend = destinationRow(stdout, 'resend');
    expect(resend.limit).toBe('3/s');
    expect(Number(resend['2xx'])).toBeGreaterThan(0);
  }, 240_000);

  it('outage: Resend down, its circuit opens in the progress, nothing exhausted, all delivered after recovery', async () => {
    const { code, stdout, stderr } = await demo([
      '--scenario',
      'outage',
      '--outage-seconds',
      '8',
      '--conversations',
      '30',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('scenario outage: Resend answers 503 to everything for 8s');
    // The circuit's state in the progress: open (or probing) while Resend was down.
    expect(stdout).toMatch(/\| .*resend \d+\/s (open|half_open)/);
    expectAccountedWithNothingExhausted(stdout);
    const resend = destinationRow(stdout, 'resend');
    expect(Number(resend['during outage'])).toBeGreaterThan(0);
    expect(Number(resend['2xx'])).toBeGreaterThan(0);
  }, 240_000);

  it('names the option and the choices for an unknown scenario', async () => {
    const { code, stderr } = await demo(['--scenario', 'meteor']);
    expect(code).toBe(2);
    expect(stderr).toContain('--scenario: expected one of burst, rate-limit, outage');
  });
});
