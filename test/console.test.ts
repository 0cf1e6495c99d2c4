/**
 * The console's access over plain HTTP: the login (a wrong or ingest-only token refused),
 * the session cookie's attributes and signature, the redirect to the login page, CSRF and
 * cross-site guards on every POST, `read` refused the actions with nothing changed, the
 * queue board read-only, and the token never in a log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { createProducer } from '../src/producer/producer.js';
import { startApi, TOKENS, type TestApi } from './helpers/api-server.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, TEST_REDIS, testEnv, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('console');
const client = redis();
const dlq = new DeadLetterQueue(client, prefix);
let api: TestApi;

beforeAll(async () => {
  // Webhook routes for every type (the destinations page lists them); nothing is delivered here.
  api = await startApi(prefix, testEnv(prefix, 'http://127.0.0.1:9'), { logLevel: 'debug' });
  // Ended 25 hours ago: its CRM and ticket updates are dead-lettered as expired when enqueued.
  const producer = createProducer({ redis: TEST_REDIS, prefix });
  await producer.conversationEnded(resolvedOutcome('console-http-old', Date.now() - 25 * 3_600_000));
  await producer.close();
});

afterAll(async () => {
  await api?.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

function request(
  path: string,
  init: { method?: string; headers?: Record<string, string>; form?: Record<string, string> } = {},
) {
  return fetch(`${api.url}${path}`, {
    method: init.method ?? (init.form ? 'POST' : 'GET'),
    redirect: 'manual',
    headers: { ...(init.form && FORM), ...init.headers },
    ...(init.form && { body: new URLSearchParams(init.form).toString() }),
  });
}

async function logIn(role: keyof typeof TOKENS): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const answer = await request('/console/login', { form: { token: TOKENS[role], next: '/console' } });
  expect(answer.status).toBe(303);
  const setCookie = answer.headers.get('set-cookie')!;
  const cookie = setCookie.split(';')[0]!;
  const page = await (await request('/console', { headers: { cookie } })).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
  return { cookie, csrf, setCookie };
}

describe('console login and session', () => {
  it('sends a page without a session to the login page, keeping where it was going', async () => {
    const answer = await request('/console/dead-letters?type=update_crm');
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe(
      `/console/login?next=${encodeURIComponent('/console/dead-letters?type=update_crm')}`,
    );
    expect((await request('/console/')).headers.get('location')).toBe('/console');
    const login = await request('/console/login');
    expect(login.status).toBe(200);
    expect(login.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(login.headers.get('cache-control')).toBe('no-store');
    // A POST without a session is 401, not a redirect.
    expect((await request('/console/dead-letters/confirm', { form: { action: 'replay' } })).status).toBe(401);
  });

  it('refuses a wrong token (401) and an ingest-only token (403), setting no cookie', async () => {
    const wrong = await request('/console/login', { form: { token: `${TOKENS.admin}x` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect(await wrong.text()).toContain('not one of the API keys');
    const ingest = await request('/console/login', { form: { token: TOKENS.ingest } });
    expect(ingest.status).toBe(403);
    expect(ingest.headers.get('set-cookie')).toBeNull();
  });

  it('sets an HttpOnly, SameSite=Strict cookie holding a signed session, not the token; Secure over https', async () => {
    const { setCookie, cookie } = await logIn('admin');
    expect(setCookie).toMatch(
      /^aftercall_console=[\w-]+\.[\w-]+; Path=\/console; Max-Age=43200; HttpOnly; SameSite=Strict$/,
    );
    expect(setCookie).not.toContain(TOKENS.admin);
    expect(Buffer.from(cookie.split('=')[1]!.split('.')[0]!, 'base64url').toString()).not.toContain(TOKENS.admin);
    const https = await request('/console/login', {
      form: { token: TOKENS.read },
      headers: { 'x-forwarded-proto': 'https' },
    });
    expect(https.headers.get('set-cookie')).toMatch(/; Secure$/);
  });

  it('goes back only to console paths after login', async () => {
    const answer = await request('/console/login', { form: { token: TOKENS.read, next: 'https://evil.example/' } });
    expect(answer.headers.get('location')).toBe('/console');
    const slashes = await request('/console/login', { form: { token: TOKENS.read, next: '//evil.example/console' } });
    expect(slashes.headers.get('location')).toBe('/console');
    const dots = await request('/console/login', { form: { token: TOKENS.read, next: '/console/../v1/openapi.json' } });
    expect(dots.headers.get('location')).toBe('/console');
    const inside = await request('/console/login', { form: { token: TOKENS.read, next: '/console/destinations' } });
    expect(inside.headers.get('location')).toBe('/console/destinations');
  });

  it('refuses a tampered cookie, and a session of another key set', async () => {
    const { cookie } = await logIn('admin');
    const [payload, signature] = cookie.split('=')[1]!.split('.');
    const data = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const longer = Buffer.from(JSON.stringify({ ...data, e: data.e + 1_000_000 })).toString('base64url');
    const tampered = `aftercall_console=${longer}.${signature}`;
    expect((await request('/console', { headers: { cookie: tampered } })).status).toBe(303);
    const other = await startApi(prefix, { API_KEYS: `admin:${TOKENS.admin}-rotated` });
    try {
      const answer = await fetch(`${other.url}/console`, { headers: { cookie }, redirect: 'manual' });
      expect(answer.status).toBe(303);
    } finally {
      await other.close();
    }
    expect((await request('/console', { headers: { cookie } })).status).toBe(200);
  });

  it('logs out: the cookie is cleared', async () => {
    const { cookie, csrf } = await logIn('read');
    const answer = await request('/console/logout', { form: { _csrf: csrf }, headers: { cookie } });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('set-cookie')).toMatch(/^aftercall_console=; Path=\/console; Max-Age=0; HttpOnly/);
  });

  it('never writes a token to the log', async () => {
    await logIn('admin');
    await request('/console/login', { form: { token: `${TOKENS.read}-wrong` } });
    expect(api.logs.length).toBeGreaterThan(0);
    for (const token of Object.values(TOKENS)) expect(api.logs.join('\n')).not.toContain(token);
  });
});

describe('console actions', () => {
  const replayAll = { action: 'replay', type: 'update_ticket' };

  it('needs the session CSRF token on every POST, and a same-site origin', async () => {
    const { cookie, csrf } = await logIn('admin');
    const headers = { cookie };
    expect((await request('/console/dead-letters/confirm', { form: replayAll, headers })).status).toBe(403);
    const other = await logIn('admin');
    const foreign = await request('/console/dead-letters/confirm', {
      form: { ...replayAll, _csrf: other.csrf },
      headers,
    });
    expect(foreign.status).toBe(403);
    const crossSite = await request('/console/dead-letters/confirm', {
      form: { ...replayAll, _csrf: csrf },
      headers: { ...headers, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSite.status).toBe(403);
    const ok = await request('/console/dead-letters/confirm', {
      form: { ...replayAll, _csrf: csrf },
      headers: { ...headers, origin: api.url, 'sec-fetch-site': 'same-origin' },
    });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('1 task would be replayed, 1 expired (need a new expiry).');
    expect((await dlq.list({ types: ['update_ticket'] })).length).toBe(1);
  });

  it('refuses replay and purge to a read session (403) and changes nothing', async () => {
    const { cookie, csrf } = await logIn('read');
    for (const path of ['/console/dead-letters/confirm', '/console/dead-letters/act']) {
      for (const action of ['replay', 'purge']) {
        const answer = await request(path, {
          form: { action, type: 'update_ticket', extend: '1h', _csrf: csrf },
          headers: { cookie },
        });
        expect(answer.status).toBe(403);
        expect(await answer.text()).toContain('need a key with the role <strong>admin</strong>');
      }
    }
    expect((await dlq.list({ types: ['update_ticket'] })).length).toBe(1);
    expect((await request('/console/dead-letters?type=update_ticket', { headers: { cookie } })).status).toBe(200);
  });

  it('answers 400 naming the field for a bad selector', async () => {
    const { cookie, csrf } = await logIn('admin');
    const list = await request('/console/dead-letters?reason=lost&since=yesterday', { headers: { cookie } });
    expect(list.status).toBe(400);
    const text = await list.text();
    expect(text).toContain('<code>reason</code>');
    expect(text).toContain('<code>since</code>: expected an ISO-8601 date-time with offset');
    const action = await request('/console/dead-letters/act', {
      form: { action: 'replay', type: 'send_email', extend: 'soon', _csrf: csrf },
      headers: { cookie },
    });
    expect(action.status).toBe(400);
    expect(await action.text()).toContain('<code>extend</code>: expected a duration such as 30m or 2h');
  });

  it('purges one entry after its dry run', async () => {
    const { cookie, csrf } = await logIn('admin');
    const [entry] = await dlq.list({ types: ['update_crm'] });
    const form = { action: 'purge', type: 'update_crm', jobId: entry!.jobId, _csrf: csrf };
    const dryRun = await request('/console/dead-letters/confirm', { form, headers: { cookie } });
    expect(await dryRun.text()).toContain('1 task would be purged.');
    expect(await dlq.get('update_crm', entry!.jobId)).toBeDefined();
    const done = await request('/console/dead-letters/act', { form, headers: { cookie } });
    expect(await done.text()).toMatch(/Purged 1 of\s+1 selected task\./);
    expect(await dlq.get('update_crm', entry!.jobId)).toBeUndefined();
  });
});

describe('console pages', () => {
  it('shows a read session the search, timeline, destinations and queue depths', async () => {
    const { cookie } = await logIn('read');
    const get = async (path: string) => {
      const answer = await request(path, { headers: { cookie } });
      expect(answer.status, path).toBe(200);
      expect(answer.headers.get('content-security-policy'), path).toContain("default-src 'none'");
      return answer.text();
    };
    expect(await get('/console')).toContain('Find a conversation');
    const timeline = await get('/console/conversation?id=console-http-old');
    expect(timeline).toMatch(/data-type="update_ticket"[\s\S]*dead lettered[\s\S]*expired/);
    expect(await get('/console/destinations')).toContain('data-destination="webhook:update_ticket"');
    const depths = await get('/console/queue-depths');
    expect(depths).toMatch(
      /data-type="update_ticket">[\s\S]*?href="\/console\/dead-letters\?type=update_ticket&amp;reason=expired">1</,
    );
  });
});

describe('queue board (bull-board)', () => {
  it('is behind the session, shows the fleet queues under its key prefix, and is read-only', async () => {
    expect((await request('/console/queues')).status).toBe(303);
    const { cookie } = await logIn('read');
    const board = await request('/console/queues', { headers: { cookie } });
    expect(board.status).toBe(200);
    expect(await board.text()).toContain('<base href="/console/queues/" />');
    expect((await request('/console/queues/static/favicon-32x32.png', { headers: { cookie } })).status).toBe(200);
    expect((await request('/console/queues/static/favicon-32x32.png')).status).toBe(303);
    const queues = await request('/console/queues/api/queues', { headers: { cookie } });
    expect(queues.status).toBe(200);
    const body = (await queues.json()) as {
      queues: { name: string; readOnlyMode: boolean; counts: Record<string, number> }[];
    };
    const ticket = body.queues.find((queue) => queue.name === '{update_ticket}');
    expect(ticket).toMatchObject({ readOnlyMode: true });
    expect(ticket!.counts.failed).toBe(1);
    const admin = await logIn('admin');
    const retry = await request('/console/queues/api/queues/%7Bupdate_ticket%7D/retry/failed', {
      method: 'PUT',
      headers: { cookie: admin.cookie },
    });
    expect(retry.status).toBe(405);
    expect((await dlq.list({ types: ['update_ticket'] })).length).toBe(1);
  });
});
