/**
 * The operator's commands on destinations, through the real `aftercall` binary
 * (bin/aftercall.js -> dist; `npm run build` first): `circuit list` (text and JSON),
 * `circuit open <destination> [--for]`, `circuit close`, the refusal of an unknown
 * destination, and that what the commands write is what the workers' destination policy
 * reads (an operator's pause makes a delivery wait, a close lets it go).
 *
 * The configuration routes e-mails to Resend (RESEND_RATE_LIMIT=2/s) and every type to its
 * webhook (CRM_WEBHOOK_RATE_LIMIT=100/min); `twilio` is recorded in Redis only, as by a
 * worker of another configuration.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createDestinationPolicy } from '../src/delivery/destination-policy.js';
import { createDestinationStore, destinationKeys, destinationsKey } from '../src/redis/destination-store.js';
import type { DestinationView } from '../src/ops/destinations.js';
import { BIN } from './helpers/child-worker.js';
import { redis, removePrefix, testEnv, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('cli-circuit');
const client = redis();
const store = createDestinationStore(client, prefix);
const root = fileURLToPath(new URL('..', import.meta.url));
const HOUR = 3_600_000;

const env = testEnv(prefix, 'http://127.0.0.1:9', {
  RESEND_API_KEY: 're_test_key',
  EMAIL_FROM: 'Clinic <bookings@example.com>',
  RESEND_RATE_LIMIT: '2/s',
  CRM_WEBHOOK_RATE_LIMIT: '100/min',
});
const ROUTED = [
  'resend',
  'webhook:follow_up_survey',
  'webhook:route_callback',
  'webhook:schedule_reminder',
  'webhook:send_email',
  'webhook:update_crm',
  'webhook:update_ticket',
];

function aftercall(args: string[]) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function listJson(): Promise<Map<string, DestinationView>> {
  const result = await aftercall(['circuit', 'list', '--json']);
  expect(result.code, result.stderr).toBe(0);
  const views = JSON.parse(result.stdout) as DestinationView[];
  return new Map(views.map((view) => [view.destination, view]));
}

/** A worker's policy on the same Redis: what a delivery to `destination` would do now. */
const policy = createDestinationPolicy({ store, defaultHoldMs: 2_000, deliveryTimeoutMs: 1_000, pollMs: 1_000 });
const gate = (destination: string) => policy.acquire(destination, `job-${Math.random()}`, Date.now() + HOUR);

const CIRCUIT = { windowMs: 30_000, minCalls: 10, ratio: 0.5, cooldownMs: 15_000, maxCooldownMs: 300_000 };

beforeEach(async () => {
  // Every test starts from closed destinations, with nothing counted.
  for (const destination of [...ROUTED, 'twilio']) await client.del(...destinationKeys(prefix, destination));
  await client.del(destinationsKey(prefix));
  // As a worker of another configuration records it (the store's register() remembers per process).
  await client.sadd(destinationsKey(prefix), 'twilio');
});

afterAll(async () => {
  await policy.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('aftercall circuit list', () => {
  it('shows every routed and recorded destination as a table: state, failures, next probe, rate limit', async () => {
    // webhook:update_crm: 4 calls in the window, 1 failed (under CIRCUIT_MIN_CALLS: stays closed).
    await store.record('webhook:update_crm', { now: Date.now(), calls: 4, failures: 1, ...CIRCUIT });
    // twilio stated its limit (1 per second) to a worker, which kept it for the fleet.
    const stated = createDestinationPolicy({ store, defaultHoldMs: 2_000, deliveryTimeoutMs: 1_000 });
    stated.learn('twilio', { limit: 1, periodMs: 1_000 });
    await stated.acquire('twilio', 'job-stated', Date.now() + HOUR);
    await stated.close();
    const { code, stdout, stderr } = await aftercall(['circuit', 'list']);
    expect(code, stderr).toBe(0);
    expect(stderr).toBe('');
    const [header, ...lines] = stdout.trimEnd().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual([
      'destination',
      'state',
      'since',
      'failures/30s',
      'nextProbe',
      'heldUntil',
      'rateLimit',
      'reason',
    ]);
    const rows = new Map(lines.map((line) => [line.split(/\s+/)[0]!, line.split(/\s{2,}/)]));
    expect([...rows.keys()]).toEqual([...ROUTED, 'twilio'].sort());
    expect(rows.get('resend')).toEqual(['resend', 'closed', '-', '0/0', '-', '-', '2/s', '-']);
    expect(rows.get('webhook:update_crm')).toEqual([
      'webhook:update_crm',
      'closed',
      '-',
      '1/4 (25%)',
      '-',
      '-',
      '100/min',
      '-',
    ]);
    expect(rows.get('twilio')).toEqual(['twilio', 'closed', '-', '0/0', '-', '-', '1/s (stated)', '-']);
  });

  it('--json gives each destination with its counts, limit and routed types', async () => {
    await store.record('webhook:update_crm', { now: Date.now(), calls: 4, failures: 1, ...CIRCUIT });
    const views = await listJson();
    expect([...views.keys()]).toEqual([...ROUTED, 'twilio'].sort());
    expect(views.get('resend')).toEqual({
      destination: 'resend',
      state: 'closed',
      since: null,
      reason: null,
      manual: false,
      nextProbe: null,
      until: null,
      calls: 0,
      failures: 0,
      failureRatio: null,
      window: '30s',
      rateLimit: '2/s',
      statedLimit: null,
      limitInForce: '2/s',
      // send_email goes to Resend; reminders and surveys too when the customer has an e-mail address.
      types: ['send_email', 'schedule_reminder', 'follow_up_survey'],
    });
    expect(views.get('webhook:update_crm')).toMatchObject({
      state: 'closed',
      calls: 4,
      failures: 1,
      failureRatio: 0.25,
      rateLimit: '100/min',
      types: ['update_crm'],
    });
    // Recorded by the fleet, not routed by this configuration.
    expect(views.get('twilio')).toMatchObject({ state: 'closed', rateLimit: null, types: [] });
  });

  it('shows a circuit the failures opened as open, with its next probe and the failure ratio', async () => {
    const before = Date.now();
    const opened = await store.record('resend', { now: before, calls: 10, failures: 6, ...CIRCUIT });
    expect(opened.transition).toBe('open');
    const resend = (await listJson()).get('resend')!;
    expect(resend).toMatchObject({ state: 'open', manual: false, calls: 10, failures: 6, failureRatio: 0.6 });
    // The probe is due one cooldown (CIRCUIT_COOLDOWN, 15 s) after it opened.
    expect(Date.parse(resend.nextProbe!) - Date.parse(resend.since!)).toBe(CIRCUIT.cooldownMs);

    const { stdout } = await aftercall(['circuit', 'list']);
    const row = stdout.split('\n').find((line) => line.startsWith('resend '))!;
    expect(row.split(/\s{2,}/).slice(0, 5)).toEqual(['resend', 'open', resend.since, '6/10 (60%)', resend.nextProbe]);
  });
});

describe('aftercall circuit open and close', () => {
  it('open --for pauses a destination fleet-wide until its probe; close resumes it', async () => {
    expect(await gate('resend')).toMatchObject({ go: true });

    const before = Date.now();
    const opened = await aftercall(['circuit', 'open', 'resend', '--for', '10m']);
    const after = Date.now();
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stdout).toMatch(/^resend: open next probe at \S+ \(opened by an operator for 10m\)\n$/);

    const resend = (await listJson()).get('resend')!;
    expect(resend).toMatchObject({ state: 'open', manual: true, reason: 'opened by an operator for 10m' });
    const probeAt = Date.parse(resend.nextProbe!);
    expect(probeAt).toBeGreaterThanOrEqual(before + 10 * 60_000);
    expect(probeAt).toBeLessThanOrEqual(after + 10 * 60_000);
    expect(opened.stdout).toContain(resend.nextProbe!);

    // A worker's next delivery to resend waits for the probe, using no attempt; other destinations go on.
    const waiting = await gate('resend');
    expect(waiting).toMatchObject({ go: false, expire: false, reason: 'circuit' });
    expect(waiting.go === false && waiting.message).toMatch(/opened by an operator for 10m.*next probe at/);
    expect(await gate('webhook:send_email')).toMatchObject({ go: true });

    const closed = await aftercall(['circuit', 'close', 'resend']);
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toBe('resend: closed (was open)\n');
    expect((await listJson()).get('resend')).toMatchObject({ state: 'closed', manual: false, nextProbe: null });
    expect(await gate('resend')).toMatchObject({ go: true });
  });

  it('open without --for has no probe: it lasts until circuit close', async () => {
    const opened = await aftercall(['circuit', 'open', 'webhook:update_crm', '--reason', 'INC-42 CRM migration']);
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stdout).toBe('webhook:update_crm: open until `aftercall circuit close` (INC-42 CRM migration)\n');
    expect((await listJson()).get('webhook:update_crm')).toMatchObject({
      state: 'open',
      manual: true,
      nextProbe: null,
      until: null,
      reason: 'INC-42 CRM migration',
    });
    const { stdout } = await aftercall(['circuit', 'list']);
    const row = stdout.split('\n').find((line) => line.startsWith('webhook:update_crm '))!;
    expect(row.split(/\s{2,}/)[4]).toBe('none (manual)');
    expect(await gate('webhook:update_crm')).toMatchObject({ go: false, expire: false, reason: 'circuit' });

    const closed = await aftercall(['circuit', 'close', 'webhook:update_crm', '--json']);
    expect(closed.code, closed.stderr).toBe(0);
    expect(JSON.parse(closed.stdout)).toMatchObject({ destination: 'webhook:update_crm', state: 'closed' });
  });

  it('close ends the hold a 410 Gone left, which nothing else ends', async () => {
    await store.set('webhook:update_ticket', { action: 'gone', now: Date.now(), until: 0, reason: '410 Gone' });
    const held = (await listJson()).get('webhook:update_ticket')!;
    expect(held).toMatchObject({ state: 'held', manual: true, until: null, reason: '410 Gone' });
    const { stdout } = await aftercall(['circuit', 'list']);
    const row = stdout.split('\n').find((line) => line.startsWith('webhook:update_ticket '))!;
    expect(row.split(/\s{2,}/).slice(1, 2)).toEqual(['held']);
    expect(row.split(/\s{2,}/)[5]).toBe('circuit close');

    const closed = await aftercall(['circuit', 'close', 'webhook:update_ticket']);
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toBe('webhook:update_ticket: closed (was held)\n');
    expect(await gate('webhook:update_ticket')).toMatchObject({ go: true });
  });

  it('acts on a destination recorded in Redis that this configuration does not route', async () => {
    const opened = await aftercall(['circuit', 'open', 'twilio', '--for', '90s']);
    expect(opened.code, opened.stderr).toBe(0);
    expect((await listJson()).get('twilio')).toMatchObject({ state: 'open', manual: true });
    expect((await aftercall(['circuit', 'close', 'twilio'])).code).toBe(0);
  });

  it('refuses an unknown destination, naming the known ones, and writes nothing', async () => {
    const result = await aftercall(['circuit', 'open', 'webhook:crm', '--for', '10m']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown destination "webhook:crm"; expected one of');
    for (const destination of [...ROUTED, 'twilio']) expect(result.stderr).toContain(destination);
    expect(await client.exists(destinationKeys(prefix, 'webhook:crm')[0])).toBe(0);
    expect(await client.sismember(destinationsKey(prefix), 'webhook:crm')).toBe(0);

    const close = await aftercall(['circuit', 'close', 'sendgrid']);
    expect(close.code).toBe(2);
    expect(close.stderr).toContain('unknown destination "sendgrid"');
  });

  it('refuses bad arguments with exit 2, naming what was expected', async () => {
    const cases: [string[], RegExp][] = [
      [['circuit'], /expected circuit list, circuit open <destination> or circuit close <destination>/],
      [['circuit', 'open'], /expected a destination: aftercall circuit open <destination>/],
      [['circuit', 'open', 'resend', '--for', 'soon'], /--for: expected a duration such as 30m or 2h, got "soon"/],
      [['circuit', 'open', 'resend', '--for', '0s'], /--for: expected a duration above zero/],
      [['circuit', 'close', 'resend', '--for', '10m'], /--for applies to circuit open only/],
      [['circuit', 'list', 'resend'], /unexpected argument "resend"/],
    ];
    for (const [args, message] of cases) {
      const result = await aftercall(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
    // Nothing was opened by the refused commands.
    expect((await listJson()).get('resend')).toMatchObject({ state: 'closed' });
  }, 120_000);
});
