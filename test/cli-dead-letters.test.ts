/**
 * The operator's commands on a dead-letter queue that has entries: `aftercall sweep`,
 * `dlq list`, `dlq replay` and `dlq purge` (by job, `--all`, `--reason`, `--extend`), run
 * as a child process (bin/aftercall.js), checked by exit code, output and what Redis
 * holds afterwards.
 *
 * The entries: three conversations whose CRM updates expired before any worker took them
 * (the producer ran on a clock hours behind, so they were accepted and then found by the
 * sweep), two ticket updates the receiver refused (terminal), and one ticket update that
 * had expired when a worker picked it up.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerminalDeliveryError } from '../src/delivery/errors.js';
import { createProducer } from '../src/producer/producer.js';
import { DeadLetterQueue, type DeadLetterEntry } from '../src/redis/dead-letter-queue.js';
import { typeKeys } from '../src/redis/keys.js';
import { startWorker } from '../src/worker/worker.js';
import { BIN } from './helpers/child-worker.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { redis, REDIS_URL, removePrefix, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const prefix = uniquePrefix('cli-dlq');
const client = redis();
const dlq = new DeadLetterQueue(client, prefix);
const root = fileURLToPath(new URL('..', import.meta.url));
const HOUR = 3_600_000;
const crm = typeKeys(prefix, 'update_crm');
const ticket = typeKeys(prefix, 'update_ticket');
/** Job ids by conversation, for each type. */
const jobs: Record<string, { crm: string; ticket: string }> = {};

function aftercall(args: string[]) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', REDIS_URL, AFTERCALL_PREFIX: prefix, LOG_LEVEL: 'silent' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const listJson = async (...args: string[]) => {
  const result = await aftercall(['dlq', 'list', '--json', ...args]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as DeadLetterEntry[];
};
const summary = (entries: DeadLetterEntry[]) =>
  entries.map((entry) => `${entry.type}/${entry.conversationId}/${entry.reason}`).sort();

beforeAll(async () => {
  const now = Date.now();
  // 5 h behind: CRM updates (4 h) are accepted and have expired by now; ticket updates (24 h) have not
  const late = createProducer({ redisUrl: REDIS_URL, prefix, clock: () => now - 5 * HOUR });
  // 30 h behind: both have expired by now
  const later = createProducer({ redisUrl: REDIS_URL, prefix, clock: () => now - 30 * HOUR });
  for (const [producer, conversationId, at] of [
    [late, 'dl-a', now - 5 * HOUR],
    [late, 'dl-b', now - 5 * HOUR],
    [later, 'dl-e', now - 30 * HOUR],
  ] as const) {
    const result = await producer.conversationEnded(resolvedOutcome(conversationId, at, { ticket: { id: 'T' } }));
    expect(result.tasks.every((task) => !task.expired)).toBe(true);
    const jobOf = (type: string) => result.tasks.find((task) => task.type === type)!.jobId;
    jobs[conversationId] = { crm: jobOf('update_crm'), ticket: jobOf('update_ticket') };
  }
  await late.close();
  await later.close();

  // A worker for ticket updates whose receiver refuses them: dl-a's and dl-b's become
  // terminal entries, dl-e's is expired at pickup.
  const worker = await startWorker({
    config: testConfig(prefix, 'http://127.0.0.1:9'),
    queues: ['update_ticket'],
    sweeper: false,
    ports: {
      update_ticket: {
        provider: 'webhook',
        deliver: async () => {
          throw new TerminalDeliveryError('webhook answered HTTP 422', { provider: 'webhook', status: 422 });
        },
      },
    },
  });
  await waitUntil(
    () => client.zcard(ticket.failed),
    (count) => count === 3,
    'three ticket updates in the dead-letter queue',
  );
  await worker.close();
}, 120_000);

afterAll(async () => {
  await removePrefix(client, prefix);
  client.disconnect();
});

// Each test starts several processes; on a loaded machine each start takes seconds.
describe('aftercall sweep and dlq on a dead-letter queue with entries', { timeout: 240_000 }, () => {
  it('sweep dead-letters the expired CRM updates and prints its counts as one JSON line', async () => {
    expect(await client.llen(crm.wait)).toBe(3);
    const { code, stdout, stderr } = await aftercall(['sweep']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const result = JSON.parse(stdout) as { expired: Record<string, number>; dropped: number; durationMs: number };
    expect(result.expired).toEqual({
      send_email: 0,
      update_crm: 3,
      schedule_reminder: 0,
      update_ticket: 0,
      route_callback: 0,
      follow_up_survey: 0,
    });
    // dead-lettering took the ticket updates out of the expiry index: nothing left to drop
    expect(result.dropped).toBe(0);
    expect(typeof result.durationMs).toBe('number');
    expect(await client.llen(crm.wait)).toBe(0);

    const again = await aftercall(['sweep']);
    expect(again.code).toBe(0);
    expect((JSON.parse(again.stdout) as { expired: Record<string, number> }).expired.update_crm).toBe(0);
  });

  it('dlq list shows every entry with its reason, filtered by type and reason', async () => {
    expect(summary(await listJson())).toEqual([
      'update_crm/dl-a/expired',
      'update_crm/dl-b/expired',
      'update_crm/dl-e/expired',
      'update_ticket/dl-a/terminal',
      'update_ticket/dl-b/terminal',
      'update_ticket/dl-e/expired',
    ]);
    expect(summary(await listJson('--reason', 'terminal'))).toEqual([
      'update_ticket/dl-a/terminal',
      'update_ticket/dl-b/terminal',
    ]);
    expect(summary(await listJson('--type', 'update_ticket', '--reason', 'expired'))).toEqual([
      'update_ticket/dl-e/expired',
    ]);
    const [terminal] = await listJson('--type', 'update_ticket', '--reason', 'terminal', '--limit', '1');
    expect(terminal).toMatchObject({ attempts: 1, lastError: 'terminal: webhook answered HTTP 422' });

    const table = await aftercall(['dlq', 'list', '--type', 'update_crm']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^type\s+reason\s+conversationId\s+attempts/);
    expect(lines.filter((line) => /^update_crm\s+expired\s+dl-[abe]\s+0\s/.test(line))).toHaveLength(3);

    const empty = await aftercall(['dlq', 'list', '--type', 'send_email']);
    expect(empty).toMatchObject({ code: 0, stdout: 'the dead-letter queue is empty\n' });
    const bad = await aftercall(['dlq', 'list', '--reason', 'lost']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--reason: expected one of expired, exhausted, terminal, invalid/);
  });

  it('dlq replay refuses an expired entry without --extend, and replays it with a new expiry', async () => {
    const refused = await aftercall(['dlq', 'replay', '--type', 'update_crm', '--all']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('replayed 0 of 3 update_crm entries\n');
    const reasons = refused.stderr.trim().split('\n');
    expect(reasons).toHaveLength(3);
    for (const conversationId of ['dl-a', 'dl-b', 'dl-e']) {
      expect(reasons).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^${jobs[conversationId]!.crm}: cannot replay update_crm job ${jobs[conversationId]!.crm}: it expired at \\S+Z; give it a new expiry \\(--extend <duration>\\)$`,
          ),
        ),
      );
    }
    expect(await client.zcard(crm.failed)).toBe(3);
    expect(await client.llen(crm.wait)).toBe(0);

    const before = Date.now();
    const one = await aftercall([
      'dlq',
      'replay',
      '--type',
      'update_crm',
      '--job',
      jobs['dl-a']!.crm,
      '--extend',
      '2h',
    ]);
    const after = Date.now();
    expect(one).toMatchObject({ code: 0, stdout: 'replayed 1 of 1 update_crm entries\n', stderr: '' });
    expect(await client.lrange(crm.wait, 0, -1)).toEqual([jobs['dl-a']!.crm]);
    const data = JSON.parse((await client.hget(crm.job(jobs['dl-a']!.crm), 'data'))!) as { expiresAt: number };
    expect(data.expiresAt).toBeGreaterThanOrEqual(before + 2 * HOUR);
    expect(data.expiresAt).toBeLessThanOrEqual(after + 2 * HOUR);
    expect((await dlq.counts(['update_crm'])).update_crm.expired).toBe(2);

    const twice = await aftercall([
      'dlq',
      'replay',
      '--type',
      'update_crm',
      '--job',
      jobs['dl-a']!.crm,
      '--extend',
      '2h',
    ]);
    expect(twice.code).toBe(1);
    expect(twice.stdout).toBe('replayed 0 of 1 update_crm entries\n');
    expect(twice.stderr).toBe(`${jobs['dl-a']!.crm}: not in the dead-letter queue\n`);

    // --all --reason takes only that reason's entries
    const none = await aftercall(['dlq', 'replay', '--type', 'update_crm', '--all', '--reason', 'terminal']);
    expect(none).toMatchObject({ code: 0, stdout: 'replayed 0 of 0 update_crm entries\n' });
    const rest = await aftercall([
      'dlq',
      'replay',
      '--type',
      'update_crm',
      '--all',
      '--reason',
      'expired',
      '--extend',
      '30m',
    ]);
    expect(rest).toMatchObject({ code: 0, stdout: 'replayed 2 of 2 update_crm entries\n', stderr: '' });
    expect((await client.lrange(crm.wait, 0, -1)).sort()).toEqual(
      [jobs['dl-a']!.crm, jobs['dl-b']!.crm, jobs['dl-e']!.crm].sort(),
    );
    expect(await client.zcard(crm.failed)).toBe(0);

    // a terminal entry that has not expired needs no --extend
    const terminal = await aftercall(['dlq', 'replay', '--type', 'update_ticket', '--job', jobs['dl-a']!.ticket]);
    expect(terminal).toMatchObject({ code: 0, stdout: 'replayed 1 of 1 update_ticket entries\n' });
    expect(await client.lrange(ticket.wait, 0, -1)).toEqual([jobs['dl-a']!.ticket]);
  });

  it('dlq purge deletes by job and by --all --reason, and leaves the other reasons', async () => {
    const missing = await aftercall(['dlq', 'purge', '--type', 'update_ticket', '--job', 'nobody%3Aupdate_ticket']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('nobody%3Aupdate_ticket: not in the dead-letter queue\n');

    const terminal = await aftercall(['dlq', 'purge', '--type', 'update_ticket', '--all', '--reason', 'terminal']);
    expect(terminal).toMatchObject({ code: 0, stdout: 'purged 1 of 1 update_ticket entries\n', stderr: '' });
    expect(await client.exists(ticket.job(jobs['dl-b']!.ticket))).toBe(0);
    expect(summary(await listJson('--type', 'update_ticket'))).toEqual(['update_ticket/dl-e/expired']);

    const one = await aftercall(['dlq', 'purge', '--type', 'update_ticket', '--job', jobs['dl-e']!.ticket]);
    expect(one).toMatchObject({ code: 0, stdout: 'purged 1 of 1 update_ticket entries\n' });
    expect(await listJson()).toEqual([]);
    expect((await dlq.counts(['update_ticket'])).update_ticket).toEqual({
      expired: 0,
      exhausted: 0,
      terminal: 0,
      invalid: 0,
    });
    // the replayed ticket update is untouched
    expect(await client.lrange(ticket.wait, 0, -1)).toEqual([jobs['dl-a']!.ticket]);
  });

  it('explains bad arguments with exit 2', async () => {
    for (const [args, message] of [
      [['dlq', 'purge', '--all'], /--type/],
      [['dlq', 'replay', '--type', 'update_crm'], /give either --job ID or --all/],
      [['dlq', 'replay', '--type', 'update_crm', '--job', 'x', '--all'], /give either --job ID or --all/],
      [['dlq', 'replay', '--type', 'update_crm', '--all', '--extend', 'soon'], /--extend/],
      [['dlq', 'drop'], /expected dlq list, dlq show, dlq replay or dlq purge/],
    ] as const) {
      const result = await aftercall([...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });
});
