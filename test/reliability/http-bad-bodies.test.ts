/**
 * Bad input over HTTP: random and malformed bodies (random bytes, JSON of any shape, valid
 * outcomes broken in one field, truncated JSON, wrong content types, oversized bodies,
 * forged signatures) to every route: each gets a 4xx, never a 5xx (an array of outcomes
 * gets its 207 with every item refused 400); nothing is enqueued or
 * kept; the server keeps serving; and no token, secret or customer value appears in the
 * server's logs (written at trace level).
 *
 * 10,000 bodies per route in `npm run chaos` (CHAOS_SCALE=full); 300 per route in
 * `npm test`, which keeps the suite fast.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, call, postJson, startApi, TOKENS, type TestApi } from '../helpers/api-server.js';
import { outcomeArbitrary } from '../helpers/outcome-arbitrary.js';
import { resolvedOutcome } from '../helpers/outcomes.js';
import { keysWithPrefix, redis, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { report, scale } from './harness.js';

const RUNS = scale(300, 10_000);
const SECRETS = {
  RETELL_API_KEY: 'key_retell_fuzz_0123456789abcdef',
  ELEVENLABS_WEBHOOK_SECRET: 'wsec_elevenlabs_fuzz_0123456789',
  VAPI_WEBHOOK_SECRET: 'vapi-fuzz-secret-0123456789',
  VAPI_HMAC_SECRET: 'vapi-fuzz-hmac-0123456789',
};
// Customer values planted in bodies: none may reach a log line.
const EMAIL = 'fuzz.customer@example.com';
const PHONE = '+14155550199';
const NAME = 'Zebulon Fuzzington';

const client = redis();
const prefix = uniquePrefix('http-fuzz');
let api: TestApi;

beforeAll(async () => {
  api = await startApi(prefix, { HTTP_BODY_LIMIT: '16kb', ...SECRETS }, { logLevel: 'trace' });
});
afterAll(async () => {
  await api?.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const now = Date.now();
const outcome = outcomeArbitrary(now).map((value) => ({
  ...value,
  customer: { ...value.customer, email: EMAIL, phone: PHONE, name: NAME },
}));
/** A valid outcome with one field broken: wrong type, unknown field, or a required one removed. */
const brokenOutcome = fc
  .tuple(
    outcome,
    fc.constantFrom('conversationId', 'endedAt', 'outcome', 'customer', 'booking', 'extra'),
    fc.jsonValue(),
  )
  .map(([value, field, junk]) => {
    const copy: Record<string, unknown> = { ...value };
    if (field === 'extra' || junk === undefined) copy.extra = junk ?? 1;
    else if (field === 'customer') copy.customer = { ...value.customer, id: junk === null ? 42 : [junk] };
    else if (typeof junk === 'string' && field !== 'booking') delete copy[field];
    else copy[field] = typeof junk === 'string' ? 17 : junk;
    return JSON.stringify(copy);
  });
const text = fc.oneof(
  fc.uint8Array({ maxLength: 2_000 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
  fc.jsonValue({ maxDepth: 6 }).map((value) => JSON.stringify(value) ?? 'null'),
  fc.string({ unit: 'binary', maxLength: 500 }),
  brokenOutcome,
  brokenOutcome.map((json) => json.slice(0, Math.max(1, json.length - 7))),
  fc.constantFrom('', '{', '[]', '[{}]', 'null', '0', '"x"', `{"__proto__":{"admin":true}}`, `${'['.repeat(5_000)}`),
  fc.constant('x'.repeat(20_000)),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  undefined,
);
const forged = fc.oneof(
  fc.constant({}),
  fc.string({ maxLength: 80 }).map((value) => ({ 'x-retell-signature': value })),
  fc.nat().map((ms) => ({ 'x-retell-signature': `v=${Date.now() - (ms % 1000)},d=${'a'.repeat(64)}` })),
  fc
    .string({ maxLength: 80 })
    .map((value) => ({ 'elevenlabs-signature': `t=${Math.floor(Date.now() / 1000)},v0=${value}` })),
  fc.string({ maxLength: 40 }).map((value) => ({ 'x-vapi-secret': `${value}x` })),
  fc.string({ maxLength: 40 }).map((value) => ({ authorization: `Bearer ${value}` })),
  fc
    .string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength: 64 })
    .map((value) => ({ 'x-signature': value, 'x-timestamp': String(Date.now()) })),
);

interface Route {
  method: 'GET' | 'POST';
  path: (junk: string) => string;
  headers: Record<string, string>;
}
const encode = (junk: string) => encodeURIComponent(junk.slice(0, 300).replace(/[\uD800-\uDFFF]/g, '?'));
const ROUTES: Record<string, Route> = {
  'POST /v1/outcomes': { method: 'POST', path: () => '/v1/outcomes', headers: auth('ingest') },
  'POST /v1/dead-letters/replay': { method: 'POST', path: () => '/v1/dead-letters/replay', headers: auth('admin') },
  'POST /v1/dead-letters/purge': { method: 'POST', path: () => '/v1/dead-letters/purge', headers: auth('admin') },
  'GET /v1/dead-letters': {
    method: 'GET',
    path: (junk) => `/v1/dead-letters?type=${encode(junk)}&limit=${encode(junk)}&cursor=${encode(junk)}`,
    headers: auth('read'),
  },
  'GET /v1/conversations/{id}/tasks': {
    method: 'GET',
    path: (junk) => `/v1/conversations/${encode(junk) || 'x'}/tasks?${encode(junk)}`,
    headers: { authorization: `Bearer ${TOKENS.ingest}` }, // the wrong role: 403 whatever the id
  },
  'POST /v1/platforms/retell': { method: 'POST', path: () => '/v1/platforms/retell', headers: {} },
  'POST /v1/platforms/vapi': { method: 'POST', path: () => '/v1/platforms/vapi', headers: {} },
  'POST /v1/platforms/elevenlabs': { method: 'POST', path: () => '/v1/platforms/elevenlabs', headers: {} },
  'GET /v1/platforms/rejected': {
    method: 'GET',
    path: (junk) => `/v1/platforms/rejected?platform=${encode(junk)}&limit=${encode(junk)}`,
    headers: auth('read'),
  },
  'POST /v1/platforms/rejected/replay': {
    method: 'POST',
    path: () => '/v1/platforms/rejected/replay',
    headers: auth('admin'),
  },
  'POST /v1/platforms/rejected/purge': {
    method: 'POST',
    path: () => '/v1/platforms/rejected/purge',
    headers: auth('admin'),
  },
};

describe(`random and malformed bodies, ${RUNS} per route`, () => {
  const statuses = new Map<string, Map<number, number>>();

  for (const [name, route] of Object.entries(ROUTES)) {
    it(`${name}: always 4xx, never 5xx`, async () => {
      const seen = new Map<number, number>();
      statuses.set(name, seen);
      const samples = fc.sample(fc.tuple(text, contentType, forged), { numRuns: RUNS, seed: 12 + name.length });
      const CONCURRENCY = 16;
      let next = 0;
      const failures: string[] = [];
      const worker = async () => {
        while (next < samples.length) {
          const [body, type, signature] = samples[next++]!;
          const headers: Record<string, string> = { ...signature, ...route.headers };
          if (type) headers['content-type'] = type;
          const answer = await call(
            `${api.url}${route.path(body)}`,
            route.method,
            headers,
            route.method === 'POST' ? body : undefined,
          );
          seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
          // An array gets 207 with one result per item: acceptable only when every item was refused.
          const allRefused =
            answer.status === 207 &&
            (answer.body as { results: { status: number }[] }).results.every((item) => item.status === 400);
          if ((answer.status < 400 || answer.status >= 500) && !allRefused) {
            failures.push(
              `${answer.status} for ${JSON.stringify(body).slice(0, 200)} (${type}): ${JSON.stringify(answer.body).slice(0, 200)}`,
            );
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      expect(failures.slice(0, 5)).toEqual([]);
      expect([...seen.values()].reduce((sum, count) => sum + count, 0)).toBe(RUNS);
    });
  }

  it('enqueued and kept nothing, keeps serving, and logged no token, secret or customer value', async () => {
    expect(await keysWithPrefix(client, prefix)).toEqual([]);
    const ok = await postJson(`${api.url}/v1/outcomes`, auth('ingest'), resolvedOutcome('after-fuzz'));
    expect(ok.status).toBe(202);
    expect((await call(`${api.url}/healthz`, 'GET')).status).toBe(200);
    expect(api.logs.length).toBeGreaterThan(RUNS); // trace-level lines were written: the check looks at something
    const text = api.logs.join('\n');
    for (const secret of [...Object.values(TOKENS), ...Object.values(SECRETS), EMAIL, PHONE, NAME]) {
      expect(text.includes(secret), `log mentions ${secret.slice(0, 6)}…`).toBe(false);
    }
    const byRoute = Object.fromEntries(
      [...statuses].map(([name, seen]) => [name, Object.fromEntries([...seen].sort(([a], [b]) => a - b))]),
    );
    report(
      'http-bad-bodies',
      undefined,
      { runsPerRoute: RUNS, byRoute },
      `HTTP bad bodies: ${RUNS.toLocaleString('en-US')} random or malformed bodies on each of ${statuses.size} routes, all answered 4xx (none 5xx), nothing enqueued or kept, no token or customer value in the logs`,
    );
  });
});
