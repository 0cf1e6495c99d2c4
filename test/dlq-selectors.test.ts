/**
 * Bulk replay and purge by selector in the CLI and the HTTP API: type, reason and a time range of
 * dead-lettering (--since/--until, ISO-8601 or a duration ago), --dry-run counting first and
 * changing nothing, and a stale entry never replayed without a new expiry (--extend).
 *
 * The entries: outcomes that ended ten days ago, so every task is dead-lettered as expired
 * when enqueued, by producers whose clocks stand three hours and ten minutes behind: two
 * conversations dead-lettered 3 h ago, one 10 min ago.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { createProducer } from '../src/producer/producer.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { auth, call, startApi } from './helpers/api-server.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, TEST_REDIS, testEnv, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('dlq-selectors');
const client = redis();
const dlq = new DeadLetterQueue(client, prefix);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

beforeAll(async () => {
  const now = Date.now();
  for (const [behind, ids] of [
    [3 * HOUR, ['old-1', 'old-2']],
    [10 * 60_000, ['new-1']],
  ] as const) {
    const producer = createProducer({ redis: TEST_REDIS, prefix, clock: () => Date.now() - behind });
    for (const id of ids) await producer.conversationEnded(resolvedOutcome(id, now - 10 * DAY));
    await producer.close();
  }
});

afterAll(async () => {
  await removePrefix(client, prefix);
  client.disconnect();
});

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const sink = (write: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        write(chunk.toString());
        done();
      },
    });
  const code = await main(args, {
    stdin: process.stdin,
    stdout: sink((text) => (stdout += text)),
    stderr: sink((text) => (stderr += text)),
    env: testEnv(prefix, 'http://127.0.0.1:9'),
  });
  return { code, stdout, stderr };
}

const crmIds = async () => (await dlq.list({ types: ['update_crm'] })).map((entry) => entry.conversationId).sort();

describe('dlq selectors', () => {
  it('lists by time range', async () => {
    const recent = await cli(['dlq', 'list', '--type', 'update_crm', '--since', '1h', '--json']);
    expect(recent.code, recent.stderr).toBe(0);
    expect(JSON.parse(recent.stdout).map((e: { conversationId: string }) => e.conversationId)).toEqual(['new-1']);
    const until = new Date(Date.now() - HOUR).toISOString();
    const older = await cli(['dlq', 'list', '--until', until, '--reason', 'expired', '--json']);
    const summary = JSON.parse(older.stdout)
      .map((e: { type: string; conversationId: string }) => `${e.type}/${e.conversationId}`)
      .sort();
    expect(summary).toEqual(['update_crm/old-1', 'update_crm/old-2', 'update_ticket/old-1', 'update_ticket/old-2']);
  });

  it('counts first with --dry-run and changes nothing', async () => {
    const dry = await cli(['dlq', 'replay', '--type', 'update_crm', '--all', '--since', '1h', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toBe(
      'dry run: would replay 1 update_crm entries\n1 of them have expired and will not be replayed without --extend\n',
    );
    const withExtend = await cli(['dlq', 'replay', '--type', 'update_crm', '--all', '--dry-run', '--extend', '2h']);
    expect(withExtend.stdout).toBe(
      'dry run: would replay 3 update_crm entries\n3 of them have expired and get a new expiry in 2h\n',
    );
    const purge = await cli(['dlq', 'purge', '--type', 'update_ticket', '--all', '--until', '1h', '--dry-run']);
    expect(purge.stdout).toBe('dry run: would purge 2 update_ticket entries\n');
    expect(await crmIds()).toEqual(['new-1', 'old-1', 'old-2']);
    expect((await dlq.counts()).update_ticket.expired).toBe(3);
  });

  it('takes the same selectors in the HTTP API: dry run counts, read is refused the action', async () => {
    const api = await startApi(prefix);
    try {
      const since = new Date(Date.now() - HOUR).toISOString();
      const page = await call(
        `${api.url}/v1/dead-letters?type=update_crm&since=${encodeURIComponent(since)}`,
        'GET',
        auth('read'),
      );
      expect(page.status).toBe(200);
      expect(page.body.items.map((e: { conversationId: string }) => e.conversationId)).toEqual(['new-1']);
      const body = JSON.stringify({ type: 'update_crm', all: true, until: since, dryRun: true });
      const json = { 'content-type': 'application/json' };
      const dry = await call(`${api.url}/v1/dead-letters/replay`, 'POST', { ...auth('admin'), ...json }, body);
      expect(dry.status).toBe(200);
      expect(dry.body).toMatchObject({ action: 'replay', dryRun: true, matched: 2, done: 0, expired: 2 });
      const refused = await call(`${api.url}/v1/dead-letters/replay`, 'POST', { ...auth('read'), ...json }, body);
      expect(refused.status).toBe(403);
      const bad = await call(`${api.url}/v1/dead-letters?since=yesterday`, 'GET', auth('read'));
      expect(bad.status).toBe(400);
      expect(JSON.stringify(bad.body)).toContain('since');
      // One entry is named by its id; the selectors are for all: true (as the CLI says too).
      const mixed = await call(
        `${api.url}/v1/dead-letters/replay`,
        'POST',
        { ...auth('admin'), ...json },
        JSON.stringify({ type: 'update_crm', jobId: 'any', reason: 'expired', dryRun: true }),
      );
      expect(mixed.status).toBe(400);
      expect(JSON.stringify(mixed.body)).toContain('reason, since and until select entries for all: true');
      // A replay without extend refuses the expired entries and replays nothing.
      const stale = await call(
        `${api.url}/v1/dead-letters/replay`,
        'POST',
        { ...auth('admin'), ...json },
        JSON.stringify({ type: 'update_crm', all: true, since }),
      );
      expect(stale.body).toMatchObject({ matched: 1, done: 0, expired: 1 });
      expect(stale.body.failed[0].error).toMatch(/give it a new expiry/);
      expect(await crmIds()).toEqual(['new-1', 'old-1', 'old-2']);
    } finally {
      await api.close();
    }
  });

  it('never replays a stale entry without a new expiry', async () => {
    const refused = await cli(['dlq', 'replay', '--type', 'update_crm', '--all', '--since', '1h']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/it expired at .*; give it a new expiry \(--extend <duration>\)/);
    expect(refused.stdout).toBe('replayed 0 of 1 update_crm entries\n');
    expect(await crmIds()).toEqual(['new-1', 'old-1', 'old-2']);
  });

  it('replays and purges exactly the selected entries', async () => {
    const replay = await cli(['dlq', 'replay', '--type', 'update_crm', '--all', '--until', '1h', '--extend', '2h']);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toBe('replayed 2 of 2 update_crm entries\n');
    expect(await crmIds()).toEqual(['new-1']);
    const purge = await cli(['dlq', 'purge', '--type', 'update_ticket', '--all', '--since', '1h']);
    expect(purge.stdout).toBe('purged 1 of 1 update_ticket entries\n');
    expect((await dlq.list({ types: ['update_ticket'] })).map((e) => e.conversationId).sort()).toEqual([
      'old-1',
      'old-2',
    ]);
  });

  it('explains bad selectors with exit 2', async () => {
    for (const [args, message] of [
      [['dlq', 'list', '--since', 'yesterday'], /--since: expected an ISO-8601 time with offset/],
      [['dlq', 'list', '--since', '1h', '--until', '2h'], /--since: expected a time before --until/],
      [['dlq', 'replay', '--type', 'update_crm', '--job', 'x', '--reason', 'expired'], /not for --job/],
    ] as const) {
      const result = await cli([...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });
});
