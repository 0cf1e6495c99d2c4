/**
 * The HTTP API through real HTTP: every answer the issue names for the outcome, status and
 * dead-letter routes, auth by role, and the refusal to start without API keys.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/environment.js';
import { conversationStatus } from '../src/ops/status.js';
import { createProducer } from '../src/producer/producer.js';
import { auth, call, postJson, startApi, TOKENS, type TestApi } from './helpers/api-server.js';
import { freePort } from './helpers/free-port.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { keysWithPrefix, redis, REDIS_URL, removePrefix, uniquePrefix } from './helpers/redis.js';

const client = redis();
const prefix = uniquePrefix('http-api');
let api: TestApi;

beforeAll(async () => {
  api = await startApi(prefix, { HTTP_BODY_LIMIT: '32kb' });
});

afterAll(async () => {
  await api?.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const url = (path: string) => `${api.url}${path}`;

describe('auth', () => {
  it('answers 401 without a token or with a wrong one, and 403 to a token of the wrong role', async () => {
    const outcome = resolvedOutcome('auth-1');
    const none = await postJson(url('/v1/outcomes'), {}, outcome);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(none.body).toMatchObject({ error: 'unauthorized' });
    const wrong = await postJson(url('/v1/outcomes'), { authorization: `Bearer ${TOKENS.ingest}x` }, outcome);
    expect(wrong.status).toBe(401);
    const basic = await postJson(url('/v1/outcomes'), { authorization: `Basic ${TOKENS.ingest}` }, outcome);
    expect(basic.status).toBe(401);
    expect((await postJson(url('/v1/outcomes'), auth('read'), outcome)).status).toBe(403);
    expect((await call(url('/v1/conversations/auth-1/tasks'), 'GET', auth('ingest'))).status).toBe(403);
    const replay = await postJson(url('/v1/dead-letters/replay'), auth('read'), { type: 'update_crm', all: true });
    expect(replay.status).toBe(403);
    expect(replay.body).toMatchObject({ error: 'forbidden' });
    // Nothing was written by the refused requests.
    expect(await keysWithPrefix(client, prefix)).toEqual([]);
    // admin may do everything.
    expect((await postJson(url('/v1/outcomes'), auth('admin'), outcome)).status).toBe(202);
    expect((await call(url('/v1/conversations/auth-1/tasks'), 'GET', auth('admin'))).status).toBe(200);
  });

  it('refuses to start without API keys, saying so', () => {
    const bin = fileURLToPath(new URL('../bin/aftercall.js', import.meta.url));
    const result = spawnSync(process.execPath, [bin, 'serve', '--port', '0'], {
      env: { PATH: process.env.PATH, REDIS_URL, AFTERCALL_PREFIX: prefix, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/API_KEYS: required: aftercall serve refuses to start without API keys/);
  });

  it('aftercall serve listens, answers, and exits 0 on SIGTERM', async () => {
    const bin = fileURLToPath(new URL('../bin/aftercall.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--host', '127.0.0.1'], {
      env: {
        PATH: process.env.PATH,
        REDIS_URL,
        AFTERCALL_PREFIX: prefix,
        LOG_LEVEL: 'silent',
        API_KEYS: `ingest:${TOKENS.ingest}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      const listening = await new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          stdout += chunk.toString('utf8');
          const match = /listening on (http:\/\/\S+)/.exec(stdout);
          if (match) resolve(match[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
      });
      expect((await call(`${listening}/healthz`, 'GET')).status).toBe(200);
      const answer = await postJson(`${listening}/v1/outcomes`, auth('ingest'), resolvedOutcome('serve-cli-1'));
      expect(answer.status).toBe(202);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses a malformed API_KEYS naming the pair, not the token', () => {
    const bin = fileURLToPath(new URL('../bin/aftercall.js', import.meta.url));
    const result = spawnSync(process.execPath, [bin, 'serve'], {
      env: { PATH: process.env.PATH, REDIS_URL, API_KEYS: 'ingest:short-secret-x,writer:0123456789abcdefXYZ' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/API_KEYS: pair 1: expected a token of at least 16 characters/);
    expect(result.stderr).not.toContain('short-secret-x');
  });
});

describe('POST /v1/outcomes', () => {
  it('answers 202 with what conversationEnded returns, and 202 with created: false for a repeat', async () => {
    const outcome = bookedOutcome('out-1');
    const first = await postJson(url('/v1/outcomes'), auth('ingest'), outcome);
    expect(first.status).toBe(202);
    expect(first.body.conversationId).toBe('out-1');
    expect(first.body.tasks.length).toBeGreaterThan(1);
    expect(first.body.tasks.every((task: { created: boolean }) => task.created)).toBe(true);
    const again = await postJson(url('/v1/outcomes'), auth('ingest'), outcome);
    expect(again.status).toBe(202);
    expect(again.body.tasks.every((task: { created: boolean }) => !task.created)).toBe(true);
    // The library's own answer for the same outcome is the same JSON.
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    try {
      expect(JSON.parse(JSON.stringify(await producer.conversationEnded(outcome)))).toEqual(again.body);
    } finally {
      await producer.close();
    }
  });

  it('answers 400 invalid_outcome with every field error, and writes nothing', async () => {
    const before = (await keysWithPrefix(client, prefix)).sort();
    const bad = { ...resolvedOutcome('out-bad'), customer: { id: 'c', email: 'not-an-address' }, extra: 1 };
    const answer = await postJson(url('/v1/outcomes'), auth('ingest'), bad);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_outcome');
    expect(answer.body.issues).toEqual(
      expect.arrayContaining([
        { path: 'customer.email', message: expect.stringMatching(/e-mail/) },
        { path: 'extra', message: 'unknown field (not part of the schema)' },
      ]),
    );
    expect(JSON.stringify(answer.body)).not.toContain('not-an-address');
    expect((await keysWithPrefix(client, prefix)).sort()).toEqual(before);
  });

  it('answers 413 above HTTP_BODY_LIMIT and 415 to a body that is not JSON', async () => {
    const big = resolvedOutcome('out-big', Date.now(), { summary: 'x'.repeat(40_000) });
    const tooLarge = await postJson(url('/v1/outcomes'), auth('ingest'), big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error).toBe('body_too_large');
    const text = await call(url('/v1/outcomes'), 'POST', { ...auth('ingest'), 'content-type': 'text/plain' }, 'hello');
    expect(text.status).toBe(415);
    const broken = await call(
      url('/v1/outcomes'),
      'POST',
      { ...auth('ingest'), 'content-type': 'application/json' },
      '{"a":',
    );
    expect(broken.status).toBe(415);
    expect(broken.body).toEqual({ error: 'not_json', message: 'the body is not valid JSON' });
    const empty = await call(
      url('/v1/outcomes'),
      'POST',
      { ...auth('ingest'), 'content-type': 'application/json' },
      '',
    );
    expect(empty.status).toBe(415);
  });

  it('answers 207 to an array: one result per item in order; one bad item does not reject the others', async () => {
    const items = [resolvedOutcome('batch-1'), { conversationId: 'batch-2' }, bookedOutcome('batch-3')];
    const answer = await postJson(url('/v1/outcomes'), auth('ingest'), items);
    expect(answer.status).toBe(207);
    expect(
      answer.body.results.map((result: { index: number; status: number }) => [result.index, result.status]),
    ).toEqual([
      [0, 202],
      [1, 400],
      [2, 202],
    ]);
    expect(answer.body.results[0].result.conversationId).toBe('batch-1');
    expect(answer.body.results[1]).toMatchObject({ error: 'invalid_outcome', issues: expect.any(Array) });
    expect(answer.body.results[2].result.conversationId).toBe('batch-3');
    expect(await conversationStatus(client, prefix, 'batch-2')).toEqual([]);
    const tooMany = await postJson(
      url('/v1/outcomes'),
      auth('ingest'),
      Array.from({ length: 101 }, (_, index) => resolvedOutcome(`many-${index}`)),
    );
    expect(tooMany.status).toBe(400);
    expect(await conversationStatus(client, prefix, 'many-0')).toEqual([]);
    expect((await postJson(url('/v1/outcomes'), auth('ingest'), [])).status).toBe(400);
  });

  it('answers 503 with Retry-After when Redis is unavailable, and /readyz says not ready', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const down = await startApi(prefix, { REDIS_URL: nowhere, PRODUCER_TIMEOUT: '300ms' });
    try {
      const answer = await postJson(`${down.url}/v1/outcomes`, auth('ingest'), resolvedOutcome('down-1'));
      expect(answer.status).toBe(503);
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(answer.body.error).toBe('redis_unavailable');
      const batch = await postJson(`${down.url}/v1/outcomes`, auth('ingest'), [resolvedOutcome('down-2')]);
      expect(batch.status).toBe(207);
      expect(batch.body.results[0].status).toBe(503);
      expect((await call(`${down.url}/v1/conversations/down-1/tasks`, 'GET', auth('read'))).status).toBe(503);
      expect((await call(`${down.url}/readyz`, 'GET')).status).toBe(503);
      expect((await call(`${down.url}/healthz`, 'GET')).status).toBe(200);
    } finally {
      await down.close();
    }
  });
});

describe('GET /v1/conversations/{conversationId}/tasks', () => {
  it('returns what aftercall status --json prints, and [] for an unknown conversation', async () => {
    await postJson(url('/v1/outcomes'), auth('ingest'), bookedOutcome('status-1'));
    const answer = await call(url('/v1/conversations/status-1/tasks'), 'GET', auth('read'));
    expect(answer.status).toBe(200);
    expect(answer.body.length).toBeGreaterThan(1);
    expect(answer.body).toEqual(JSON.parse(JSON.stringify(await conversationStatus(client, prefix, 'status-1'))));
    const unknown = await call(url('/v1/conversations/nobody/tasks'), 'GET', auth('read'));
    expect(unknown).toMatchObject({ status: 200, body: [] });
    const colon = await call(url(`/v1/conversations/${encodeURIComponent('vapi:call-1')}/tasks`), 'GET', auth('read'));
    expect(colon).toMatchObject({ status: 200, body: [] });
  });
});

describe('dead letters', () => {
  const DAY = 86_400_000;
  beforeAll(async () => {
    // Outcomes that ended two days ago: their tasks are already expired, so each is dead-lettered at once.
    for (let index = 0; index < 5; index += 1) {
      const answer = await postJson(
        url('/v1/outcomes'),
        auth('ingest'),
        resolvedOutcome(`old-${index}`, Date.now() - 2 * DAY),
      );
      expect(answer.status).toBe(202);
    }
  });

  it('lists them a page at a time, filtered by type and reason', async () => {
    const first = await call(url('/v1/dead-letters?type=update_crm&reason=expired&limit=2'), 'GET', auth('read'));
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    expect(
      first.body.items.every(
        (entry: { type: string; reason: string }) => entry.type === 'update_crm' && entry.reason === 'expired',
      ),
    ).toBe(true);
    const seen = [...first.body.items];
    let cursor = first.body.nextCursor;
    while (cursor) {
      const page = await call(url(`/v1/dead-letters?type=update_crm&limit=2&cursor=${cursor}`), 'GET', auth('read'));
      seen.push(...page.body.items);
      cursor = page.body.nextCursor;
    }
    expect(new Set(seen.map((entry) => entry.conversationId))).toEqual(new Set([0, 1, 2, 3, 4].map((i) => `old-${i}`)));
    const all = await call(url('/v1/dead-letters'), 'GET', auth('read'));
    expect(all.body.items.length).toBeGreaterThanOrEqual(10);
    const bad = await call(url('/v1/dead-letters?type=fax&limit=0'), 'GET', auth('read'));
    expect(bad.status).toBe(400);
    expect(bad.body.issues.map((issue: { path: string }) => issue.path).sort()).toEqual(['limit', 'type']);
  });

  it('replays and purges with the CLI selectors; dryRun counts and changes nothing', async () => {
    const count = async () =>
      (await call(url('/v1/dead-letters?type=update_ticket&limit=1000'), 'GET', auth('read'))).body.items.length;
    expect(await count()).toBe(5);
    const dry = await postJson(url('/v1/dead-letters/replay'), auth('admin'), {
      type: 'update_ticket',
      all: true,
      dryRun: true,
    });
    expect(dry).toMatchObject({ status: 200, body: { action: 'replay', dryRun: true, matched: 5, done: 0 } });
    expect(await count()).toBe(5);
    // Expired entries need a new expiry: without extend each one fails, with its reason.
    const noExtend = await postJson(url('/v1/dead-letters/replay'), auth('admin'), {
      type: 'update_ticket',
      jobId:
        dry.body.matched &&
        (await call(url('/v1/dead-letters?type=update_ticket&limit=1'), 'GET', auth('read'))).body.items[0].jobId,
    });
    expect(noExtend.body).toMatchObject({ matched: 1, done: 0, failed: [{ error: expect.stringMatching(/expired/) }] });
    const replayed = await postJson(url('/v1/dead-letters/replay'), auth('admin'), {
      type: 'update_ticket',
      all: true,
      reason: 'expired',
      extend: '2h',
    });
    expect(replayed.body).toMatchObject({ matched: 5, done: 5, failed: [] });
    expect(await count()).toBe(0);
    const state = await conversationStatus(client, prefix, 'old-0');
    expect(state.find((task) => task.type === 'update_ticket')?.state).toBe('waiting');

    const purgeDry = await postJson(url('/v1/dead-letters/purge'), auth('admin'), {
      type: 'update_crm',
      all: true,
      dryRun: true,
    });
    expect(purgeDry.body).toMatchObject({ matched: 5, done: 0 });
    const purged = await postJson(url('/v1/dead-letters/purge'), auth('admin'), { type: 'update_crm', all: true });
    expect(purged.body).toMatchObject({ matched: 5, done: 5 });
    expect((await call(url('/v1/dead-letters?type=update_crm'), 'GET', auth('read'))).body.items).toEqual([]);
    const missing = await postJson(url('/v1/dead-letters/purge'), auth('admin'), { type: 'update_crm', jobId: 'nope' });
    expect(missing.body).toMatchObject({ matched: 0, done: 0, failed: [{ jobId: 'nope' }] });
    const neither = await postJson(url('/v1/dead-letters/purge'), auth('admin'), { type: 'update_crm' });
    expect(neither.status).toBe(400);
    expect(neither.body.issues).toEqual([{ path: 'jobId', message: 'expected either jobId or all: true' }]);
  });
});

describe('operations', () => {
  it('serves /healthz, /readyz, /metrics (requests by route and status) and 404 for anything else', async () => {
    expect(await call(url('/healthz'), 'GET')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await call(url('/readyz'), 'GET')).toMatchObject({ status: 200, body: { status: 'ready' } });
    const metrics = await call(url('/metrics'), 'GET');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(
      /aftercall_http_requests_total\{route="\/v1\/outcomes",method="POST",status="202"\} \d+/,
    );
    expect(metrics.body).toMatch(/aftercall_http_request_duration_seconds_bucket/);
    expect(metrics.body).toMatch(/aftercall_producer_outcomes_total/);
    expect(metrics.body).not.toMatch(/status-1|out-1/);
    expect((await call(url('/v1/nothing'), 'GET')).status).toBe(404);
  });

  it('loads the same configuration as the other commands', () => {
    expect(loadConfig({ AFTERCALL_PREFIX: prefix }).prefix).toBe(prefix);
  });
});
