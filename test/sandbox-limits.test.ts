/**
 * The sandbox behaves like the providers, not only like dice: standing per-destination
 * limits (fixed windows) answered with each provider's own 429, outages, and the traffic
 * counters that prove from the provider's side that a fleet kept to a limit. Driven by the
 * real `resend` and `twilio` SDKs and raw HTTP; the sandbox's clock is injected where a
 * test must place requests in windows, so nothing here waits for a window to pass.
 */
import { Readable, Writable } from 'node:stream';
import { Resend } from 'resend';
import { Webhook } from 'standardwebhooks';
import twilio from 'twilio';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sandboxCommand } from '../dev/sandbox/sandbox-command.js';
import {
  SANDBOX_WEBHOOK_SECRET,
  startSandbox,
  type FaultConfig,
  type Sandbox,
  type TrafficReport,
} from '../dev/sandbox/sandbox.js';
import type { CommandIO } from '../src/cli/io.js';
import { asciiKey, conversationTaskKey, jobIdFor } from '../src/tasks/job-id.js';
import { waitUntil } from './helpers/wait.js';

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
/** A second boundary plus 250 ms: the sandbox's clock starts here in the clocked tests. */
const T0 = Date.parse('2030-01-01T12:00:00.000Z') + 250;

type TwilioRequestClient = InstanceType<typeof twilio.RequestClient>;
type TwilioRequestOptions<T> = Parameters<TwilioRequestClient['request']>[0] & { data?: T };
type TwilioResponse<T> = Awaited<ReturnType<TwilioRequestClient['request']>> & { body: T };

/** The twilio SDK's own HTTP client pointed at the sandbox; keeps the last answer's headers (RestException has none). */
class SandboxTwilioClient extends twilio.RequestClient {
  lastHeaders: Record<string, string> = {};

  constructor(private readonly base: string) {
    super();
  }

  override async request<TData>(opts: TwilioRequestOptions<TData>): Promise<TwilioResponse<TData>> {
    const uri = opts.uri.replace(/^https:\/\/api\.twilio\.com/, this.base);
    const response = await super.request<TData>({ ...opts, uri });
    this.lastHeaders = response.headers as Record<string, string>;
    return response;
  }
}

function twilioClient(target: Sandbox) {
  const http = new SandboxTwilioClient(target.twilioApiBase);
  return { http, client: twilio(ACCOUNT_SID, 'test-token', { httpClient: http }) };
}

const sms = (body = 'Your booking is confirmed') => ({ to: '+14155550100', from: '+15005550006', body });

async function rejectionOf(promise: Promise<unknown>): Promise<InstanceType<typeof twilio.RestException>> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(twilio.RestException);
  return error as InstanceType<typeof twilio.RestException>;
}

const email = (subject = 'Your booking') => ({
  from: 'Bookings <bookings@example.com>',
  to: ['ada@example.com'],
  subject,
  text: 'Booked',
  headers: { 'X-Aftercall-Type': 'send_email' },
});

const signer = new Webhook(SANDBOX_WEBHOOK_SECRET);

/** A signed Standard Webhooks POST of a task body to /webhooks/<type>. */
async function postWebhook(target: Sandbox, type: string, conversationId: string): Promise<Response> {
  const idempotencyKey = conversationTaskKey(conversationId, type);
  const raw = JSON.stringify({
    type,
    idempotencyKey,
    conversationId,
    jobId: jobIdFor(idempotencyKey),
    attempt: 1,
    createdAt: '2030-01-01T12:00:00.000Z',
    expiresAt: '2030-01-01T12:30:00.000Z',
    payload: { customer: { id: 'c1' } },
  });
  const id = asciiKey(idempotencyKey);
  const at = new Date();
  const response = await fetch(target.webhookUrl(type), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signer.sign(id, at, raw),
    },
    body: raw,
  });
  await response.arrayBuffer();
  return response;
}

const putFaults = async (target: Sandbox, change: unknown) => {
  const response = await fetch(`${target.url}/_sandbox/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(change),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

const stats = async (target: Sandbox, query = ''): Promise<TrafficReport> => {
  const response = await fetch(`${target.url}/_sandbox/stats${query}`);
  expect(response.status).toBe(200);
  return (await response.json()) as TrafficReport;
};

/** A sandbox whose clock the test moves. */
let clock = T0;
let sandbox: Sandbox;
let resend: Resend;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, seed: 11, now: () => clock });
  resend = new Resend('re_test_key', { baseUrl: sandbox.resendBaseUrl });
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  clock = T0;
  sandbox.setFaults({ limits: null, outages: null, gone: [], rateLimitRate: 0, serverErrorRate: 0, hangRate: 0 });
  sandbox.reset();
});

describe('standing limits, answered as each provider answers them', () => {
  it('Resend: 429 rate_limit_exceeded above the limit, ratelimit-* headers on every answer, through the resend SDK', async () => {
    sandbox.setFaults({ limits: { resend: 3 } });
    const answers = [];
    for (let i = 0; i < 3; i += 1) answers.push(await resend.emails.send(email(), { idempotencyKey: `ok-${i}` }));
    for (const [i, answer] of answers.entries()) {
      expect(answer.error).toBeNull();
      // Resend states its limit on successful answers too.
      expect(answer.headers).toMatchObject({
        'ratelimit-limit': '3',
        'ratelimit-remaining': String(2 - i),
        'ratelimit-reset': '1',
      });
      expect(answer.headers?.['retry-after']).toBeUndefined();
    }

    clock += 500; // still the same window
    const limited = await resend.emails.send(email(), { idempotencyKey: 'over-1' });
    expect(limited.data).toBeNull();
    expect(limited.error).toEqual({
      statusCode: 429,
      name: 'rate_limit_exceeded',
      message:
        'Too many requests. You can only make 3 requests per second. See rate limit response headers for more information. Or contact support to increase rate limit.',
    });
    expect(limited.headers).toMatchObject({
      'retry-after': '1',
      'ratelimit-limit': '3',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '1',
    });
    // A request the provider cannot even validate counts against the limit and carries the headers.
    const invalid = await resend.emails.send({ ...email(), from: '' });
    expect(invalid.error).toMatchObject({ statusCode: 429 });
    expect(sandbox.deliveries({ provider: 'resend' })).toHaveLength(3);

    clock += 250; // the next window: 1 s after the first request's window started
    const again = await resend.emails.send(email(), { idempotencyKey: 'over-1' });
    expect(again.error).toBeNull(); // a refused request left no idempotency memory
    expect(again.headers).toMatchObject({ 'ratelimit-remaining': '2', 'ratelimit-reset': '1' });
    const unchecked = await resend.emails.send({ ...email(), from: '' });
    expect(unchecked.error).toMatchObject({ statusCode: 422, name: 'validation_error' });
    expect(unchecked.headers).toMatchObject({ 'ratelimit-limit': '3', 'ratelimit-remaining': '1' });

    // Refused requests are rejections with their time, never deliveries.
    expect(sandbox.rejections()).toEqual([
      {
        provider: 'resend',
        destination: 'resend',
        receivedAt: new Date(T0 + 500).toISOString(),
        status: 429,
        reason: 'limit',
        idempotencyKey: 'over-1',
      },
      {
        provider: 'resend',
        destination: 'resend',
        receivedAt: new Date(T0 + 500).toISOString(),
        status: 429,
        reason: 'limit',
        idempotencyKey: null,
      },
    ]);
    expect(sandbox.deliveries().map((delivery) => delivery.destination)).toEqual([
      'resend',
      'resend',
      'resend',
      'resend',
    ]);
    expect(sandbox.stats().faults).toMatchObject({ rateLimited: 2, overLimit: 2 });
  });

  it('ratelimit-reset counts the seconds left in a longer window; a new window length starts a new window', async () => {
    sandbox.setFaults({ limits: { resend: { limit: 2, windowMs: 60_000 } } });
    clock = Date.parse('2030-01-01T12:00:10.000Z');
    expect((await resend.emails.send(email())).error).toBeNull();
    clock += 20_500;
    expect((await resend.emails.send(email())).headers).toMatchObject({
      'ratelimit-remaining': '0',
      'ratelimit-reset': '30',
    });
    const limited = await resend.emails.send(email());
    expect(limited.error?.message).toMatch(/You can only make 2 requests per 60 seconds\./);
    expect(limited.headers).toMatchObject({ 'retry-after': '30', 'ratelimit-reset': '30' });

    sandbox.setFaults({ limits: { resend: 2 } }); // per second now
    expect((await resend.emails.send(email())).error).toBeNull();
  });

  it('Twilio: 429 with code 20429 and Retry-After above the limit, as the twilio SDK surfaces it', async () => {
    sandbox.setFaults({ limits: { twilio: 2 } });
    const { client, http } = twilioClient(sandbox);
    expect((await client.messages.create(sms())).status).toBe('queued');
    // Twilio states no limit: no ratelimit-* headers, not even on success.
    expect(http.lastHeaders['ratelimit-limit']).toBeUndefined();
    expect((await client.messages.create(sms())).status).toBe('queued');

    const error = await rejectionOf(client.messages.create(sms()));
    expect(error).toMatchObject({
      status: 429,
      code: 20429,
      message: 'Too Many Requests',
      moreInfo: 'https://www.twilio.com/docs/errors/20429',
    });
    expect(http.lastHeaders['retry-after']).toBe('1');
    expect(sandbox.deliveries({ provider: 'twilio' })).toHaveLength(2);

    // The message list is a read: not limited, not counted.
    expect((await client.messages.list({ to: '+14155550100' })).length).toBe(2);

    clock += 1_000;
    expect((await client.messages.create(sms())).status).toBe('queued');
    expect(sandbox.rejections({ provider: 'twilio' }).map(({ status, reason }) => ({ status, reason }))).toEqual([
      { status: 429, reason: 'limit' },
    ]);
  });

  it('webhooks: each path is a destination with its own limit; 429 with retry-after and ratelimit-* headers', async () => {
    sandbox.setFaults({ limits: { '*': 5, 'webhook:update_crm': 1 } });
    expect((await postWebhook(sandbox, 'update_crm', 'call-1')).status).toBe(200);
    const limited = await postWebhook(sandbox, 'update_crm', 'call-2');
    expect(limited.status).toBe(429);
    expect(Object.fromEntries(limited.headers)).toMatchObject({
      'retry-after': '1',
      'ratelimit-limit': '1',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '1',
      'ratelimit-policy': '1;w=1',
    });

    // Another path has its own window, under the limit for every destination.
    const surveys = [];
    for (let i = 0; i < 6; i += 1) surveys.push((await postWebhook(sandbox, 'follow_up_survey', `call-${i}`)).status);
    expect(surveys).toEqual([200, 200, 200, 200, 200, 429]);
    const ok = await postWebhook(sandbox, 'schedule_reminder', 'call-1');
    expect(ok.status).toBe(200);
    expect(Object.fromEntries(ok.headers)).toMatchObject({ 'ratelimit-limit': '5', 'ratelimit-remaining': '4' });

    expect(
      sandbox.rejections({ provider: 'webhook' }).map(({ destination, idempotencyKey }) => ({
        destination,
        idempotencyKey,
      })),
    ).toEqual([
      { destination: 'webhook:update_crm', idempotencyKey: 'call-2:update_crm' },
      { destination: 'webhook:follow_up_survey', idempotencyKey: 'call-5:follow_up_survey' },
    ]);
    expect(new Set(sandbox.deliveries().map((delivery) => delivery.destination))).toEqual(
      new Set(['webhook:update_crm', 'webhook:follow_up_survey', 'webhook:schedule_reminder']),
    );

    // Removing a destination's own limit falls back to the one for every destination.
    sandbox.setFaults({ limits: { 'webhook:update_crm': null } });
    expect(sandbox.faults().limits).toEqual({ '*': { limit: 5, windowMs: 1_000 } });
    expect((await postWebhook(sandbox, 'update_crm', 'call-3')).status).toBe(200);
  });

  it('keeps to its limit under concurrent load on the real clock: never more 2xx in a window than the limit', async () => {
    const live = await startSandbox({ port: 0, seed: 3, faults: { limits: { resend: 5 } } });
    try {
      const client = new Resend('re_test_key', { baseUrl: live.resendBaseUrl });
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => client.emails.send(email(`n${i}`))));
      const ok = answers.filter((answer) => answer.error === null).length;
      const limited = answers.filter((answer) => answer.error?.name === 'rate_limit_exceeded').length;
      expect(ok + limited).toBe(40);
      expect(limited).toBeGreaterThan(0);

      const report = (await stats(live, '?destination=resend')).destinations.resend!;
      expect(report).toMatchObject({ requests: 40, ok, rateLimited: limited, overLimit: limited });
      for (const second of report.seconds) expect(second.ok).toBeLessThanOrEqual(5);
      expect(report.maxPerSecond.ok).toBeLessThanOrEqual(5);
      expect(ok).toBeLessThanOrEqual(5 * report.seconds.length);
      expect(live.deliveries()).toHaveLength(ok);
      expect(live.rejections()).toHaveLength(limited);
    } finally {
      await live.close();
    }
  });
});

describe('outages', () => {
  it('answers 503 to every request of the destination while it lasts, and recovers by itself', async () => {
    sandbox.setFaults({ limits: { resend: 2 } });
    const started = await putFaults(sandbox, { outages: { resend: { durationMs: 25_000 } } });
    expect(started.status).toBe(200);
    expect(started.body.outages).toEqual({
      resend: { since: new Date(T0).toISOString(), until: new Date(T0 + 25_000).toISOString() },
    });

    for (let i = 0; i < 4; i += 1) {
      const down = await resend.emails.send(email(), { idempotencyKey: `down-${i}` });
      expect(down.error).toMatchObject({ statusCode: 503, name: 'application_error' });
      clock += 5_000;
    }
    // Other destinations are up.
    const { client } = twilioClient(sandbox);
    expect((await client.messages.create(sms())).status).toBe('queued');

    clock = T0 + 24_999;
    expect((await resend.emails.send(email())).error).toMatchObject({ statusCode: 503 });
    clock = T0 + 25_000;
    // Over: the outage leaves the configuration, and requests during it used none of the limit's window.
    expect(sandbox.faults().outages).toEqual({});
    const back = await resend.emails.send(email(), { idempotencyKey: 'down-0' });
    expect(back.error).toBeNull();
    expect(back.headers).toMatchObject({ 'ratelimit-remaining': '1' });

    expect(sandbox.deliveries({ provider: 'resend' })).toHaveLength(1);
    const rejected = sandbox.rejections({ provider: 'resend' });
    expect(rejected.map(({ status, reason }) => `${status} ${reason}`)).toEqual(Array(5).fill('503 outage'));
    expect(rejected.map((entry) => entry.idempotencyKey)).toEqual(['down-0', 'down-1', 'down-2', 'down-3', null]);
    const report = (await stats(sandbox)).destinations;
    expect(report.resend).toMatchObject({ requests: 6, ok: 1, serverErrors: 5, duringOutage: 5 });
    expect(report.twilio).toMatchObject({ requests: 1, ok: 1, duringOutage: 0 });
    expect(sandbox.stats().faults).toMatchObject({ serverErrors: 5, outage: 5 });
  });

  it('lasts until cleared without a duration, takes Twilio reads down too, and ends on null', async () => {
    expect((await putFaults(sandbox, { outages: { twilio: {}, 'webhook:update_crm': {} } })).status).toBe(200);
    expect(sandbox.faults().outages.twilio).toEqual({ since: new Date(T0).toISOString(), until: null });
    const { client } = twilioClient(sandbox);
    expect(await rejectionOf(client.messages.create(sms()))).toMatchObject({ status: 503, code: 20503 });
    expect(await rejectionOf(client.messages.list({ to: '+14155550100' }))).toMatchObject({ status: 503 });
    expect((await postWebhook(sandbox, 'update_crm', 'call-1')).status).toBe(503);
    expect((await postWebhook(sandbox, 'update_ticket', 'call-1')).status).toBe(200);

    clock += 3_600_000;
    expect(await rejectionOf(client.messages.create(sms()))).toMatchObject({ status: 503 });
    const ended = await putFaults(sandbox, { outages: { twilio: null } });
    expect(ended.body.outages).toEqual({
      'webhook:update_crm': { since: new Date(T0).toISOString(), until: null },
    });
    expect((await client.messages.create(sms())).status).toBe('queued');
    expect((await postWebhook(sandbox, 'update_crm', 'call-1')).status).toBe(503);

    // An outage until a given time.
    const until = new Date(clock + 60_000).toISOString();
    sandbox.setFaults({ outages: { twilio: { until } } });
    expect(sandbox.faults().outages.twilio).toEqual({ since: new Date(clock).toISOString(), until });
    sandbox.setFaults({ outages: null });
    expect(sandbox.faults().outages).toEqual({});
    expect((await postWebhook(sandbox, 'update_crm', 'call-1')).status).toBe(200);
  });

  it('stays through a reset, which forgets the traffic and the windows', async () => {
    sandbox.setFaults({ limits: { twilio: 1 }, outages: { resend: {} } });
    const { client } = twilioClient(sandbox);
    await client.messages.create(sms());
    await rejectionOf(client.messages.create(sms()));
    sandbox.reset();
    expect(sandbox.faults().outages.resend).toBeDefined();
    expect(sandbox.faults().limits.twilio).toEqual({ limit: 1, windowMs: 1_000 });
    expect(sandbox.rejections()).toEqual([]);
    expect((await stats(sandbox)).destinations).toMatchObject({
      resend: { requests: 0 },
      twilio: { requests: 0, limit: { limit: 1, windowMs: 1_000 } },
    });
    expect((await client.messages.create(sms())).status).toBe('queued'); // a fresh window
    expect((await resend.emails.send(email())).error).toMatchObject({ statusCode: 503 });
  });
});

describe('a removed webhook endpoint', () => {
  it('answers 410 Gone to every request of a path listed as gone, and only that path', async () => {
    sandbox.setFaults({ gone: ['webhook:update_crm'], limits: { '*': 1 } });
    for (const conversation of ['call-1', 'call-2']) {
      const gone = await postWebhook(sandbox, 'update_crm', conversation);
      expect(gone.status).toBe(410);
    }
    expect((await postWebhook(sandbox, 'update_ticket', 'call-1')).status).toBe(200);
    expect(sandbox.rejections().map(({ destination, status, reason }) => [destination, status, reason])).toEqual([
      ['webhook:update_crm', 410, 'gone'],
      ['webhook:update_crm', 410, 'gone'],
    ]);
    // Gone before the limit: the 410s used none of its window.
    expect((await stats(sandbox)).destinations['webhook:update_crm']).toMatchObject({ requests: 2, clientErrors: 2 });
    sandbox.setFaults({ gone: [] });
    expect((await postWebhook(sandbox, 'update_crm', 'call-1')).status).toBe(200);
    expect(sandbox.stats().faults.gone).toBe(2);
  });
});

describe('fault changes are validated, naming the field', () => {
  it.each([
    [{ limits: { resnd: 3 } }, 'limits.resnd', /unknown destination/],
    [{ limits: { 'webhook:': 3 } }, 'limits.webhook:', /unknown destination/],
    [{ limits: { resend: 0 } }, 'limits.resend', /at least 1 request/],
    [{ limits: { resend: 2.5 } }, 'limits.resend', /whole number/],
    [{ limits: { twilio: 'fast' } }, 'limits.twilio', /requests per second/],
    [{ limits: { resend: { limit: 3, windowMs: -5 } } }, 'limits.resend.windowMs', /at least 1 ms/],
    [{ limits: { resend: { windowMs: 1000 } } }, 'limits.resend.limit', /whole number of requests from 1/],
    [{ limits: { resend: { limit: 3, per: 'second' } } }, 'limits.resend.per', /unknown field/],
    [{ limits: 5 }, 'limits', /object of destination names/],
    [{ outages: { '*': {} } }, 'outages.*', /unknown destination/],
    [{ outages: { resend: { durationMs: 'long' } } }, 'outages.resend.durationMs', /expected a number/],
    [{ outages: { resend: { durationMs: 0 } } }, 'outages.resend.durationMs', /at least 1 ms/],
    [{ outages: { resend: 25 } }, 'outages.resend', /durationMs/],
    [{ outages: { resend: { until: 'tomorrow' } } }, 'outages.resend.until', /ISO-8601/],
    [{ outages: { resend: { until: '2020-01-01T00:00:00Z' } } }, 'outages.resend.until', /after now/],
    [{ outages: { resend: { durationMs: 5, until: '2040-01-01T00:00:00Z' } } }, 'outages.resend', /not both/],
    [{ gone: ['resend'] }, 'gone[0]', /webhook:<type>/],
    [{ gone: 'webhook:update_crm' }, 'gone', /list of webhook destinations/],
  ])('refuses %j with 400 naming %s, and changes nothing', async (change, path, message) => {
    sandbox.setFaults({ limits: { twilio: 7 } });
    const before = sandbox.faults();
    const answer = await putFaults(sandbox, { ...change, hangRate: 0.5 });
    expect(answer.status).toBe(400);
    const issues = answer.body.issues as { path: string; message: string }[];
    expect(issues).toContainEqual({ path, message: expect.stringMatching(message) });
    expect(answer.body.error).toContain(path);
    expect(sandbox.faults()).toEqual(before);
  });
});

describe('GET /_sandbox/stats', () => {
  it('counts requests, 2xx, 429, 4xx and 5xx per destination and second, and the most in one second and in any window', async () => {
    sandbox.setFaults({ limits: { resend: 3 } });
    // Three at .9 s into one second and three at .1 s into the next: each aligned second stays within
    // the limit, and the fixed windows let six through in 200 ms, which the sliding count shows.
    clock = Date.parse('2030-01-01T12:00:00.900Z');
    for (let i = 0; i < 3; i += 1) expect((await resend.emails.send(email())).error).toBeNull();
    clock = Date.parse('2030-01-01T12:00:01.100Z');
    for (let i = 0; i < 3; i += 1) expect((await resend.emails.send(email())).error).toBeNull();
    expect((await resend.emails.send(email())).error?.statusCode).toBe(429);
    expect((await resend.emails.send({ ...email(), subject: 7 as unknown as string })).error?.statusCode).toBe(429);
    clock = Date.parse('2030-01-01T12:00:05.000Z');
    expect((await resend.emails.send({ ...email(), subject: 7 as unknown as string })).error?.statusCode).toBe(422);
    sandbox.setFaults({ serverErrorRate: 1 });
    expect((await resend.emails.send(email())).error?.statusCode).toBeGreaterThanOrEqual(500);
    sandbox.setFaults({ serverErrorRate: 0 });
    expect((await postWebhook(sandbox, 'update_crm', 'call-1')).status).toBe(200);

    const report = await stats(sandbox);
    expect(report.since).toBe(new Date(T0).toISOString());
    expect(report.now).toBe('2030-01-01T12:00:05.000Z');
    expect(Object.keys(report.destinations)).toEqual(['resend', 'webhook:update_crm']);
    const mail = report.destinations.resend!;
    expect(mail).toMatchObject({
      requests: 10,
      ok: 6,
      rateLimited: 2,
      clientErrors: 1,
      serverErrors: 1,
      overLimit: 2,
      duringOutage: 0,
      firstAt: '2030-01-01T12:00:00.900Z',
      lastAt: '2030-01-01T12:00:05.000Z',
      limit: { limit: 3, windowMs: 1_000 },
      maxPerSecond: { requests: 5, ok: 3 },
      sliding: { windowMs: 1_000, maxRequests: 8, maxOk: 6, maxRequestsFrom: '2030-01-01T12:00:00.900Z' },
    });
    expect(mail.seconds).toEqual([
      {
        start: '2030-01-01T12:00:00.000Z',
        requests: 3,
        ok: 3,
        rateLimited: 0,
        clientErrors: 0,
        serverErrors: 0,
      },
      {
        start: '2030-01-01T12:00:01.000Z',
        requests: 5,
        ok: 3,
        rateLimited: 2,
        clientErrors: 0,
        serverErrors: 0,
      },
      {
        start: '2030-01-01T12:00:05.000Z',
        requests: 2,
        ok: 0,
        rateLimited: 0,
        clientErrors: 1,
        serverErrors: 1,
      },
    ]);
    expect(report.destinations['webhook:update_crm']).toMatchObject({ requests: 1, ok: 1, limit: null });

    // Another window length, one destination, and the seconds from a time on.
    const narrow = await stats(sandbox, '?destination=resend&windowMs=100&from=2030-01-01T12:00:01Z');
    expect(Object.keys(narrow.destinations)).toEqual(['resend']);
    expect(narrow.destinations.resend!.sliding).toMatchObject({ windowMs: 100, maxRequests: 5, maxOk: 3 });
    expect(narrow.destinations.resend!.seconds.map((second) => second.start)).toEqual([
      '2030-01-01T12:00:01.000Z',
      '2030-01-01T12:00:05.000Z',
    ]);
    // A destination that saw nothing reads as zeros.
    expect((await stats(sandbox, '?destination=twilio')).destinations.twilio).toMatchObject({
      requests: 0,
      maxPerSecond: { requests: 0, ok: 0 },
      sliding: { maxRequests: 0, maxRequestsFrom: null },
      seconds: [],
    });
  });

  it.each([
    ['?destination=fax', 'destination'],
    ['?windowMs=0', 'windowMs'],
    ['?windowMs=1s', 'windowMs'],
    ['?from=yesterday', 'from'],
    ['?colour=red', 'colour'],
  ])('answers %s with 400 naming %s', async (query, path) => {
    const response = await fetch(`${sandbox.url}/_sandbox/stats${query}`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { issues: { path: string }[] }).issues.map((issue) => issue.path)).toContain(
      path,
    );
  });

  it('lists rejected requests beside the deliveries', async () => {
    sandbox.setFaults({ limits: { 'webhook:update_crm': 1 } });
    await postWebhook(sandbox, 'update_crm', 'call-1');
    await postWebhook(sandbox, 'update_crm', 'call-2');
    const answer = (await (await fetch(`${sandbox.url}/_sandbox/deliveries?provider=webhook`)).json()) as {
      deliveries: { destination: string; idempotencyKey: string }[];
      rejected: { destination: string; idempotencyKey: string; status: number; receivedAt: string }[];
    };
    expect(answer.deliveries.map((entry) => [entry.destination, entry.idempotencyKey])).toEqual([
      ['webhook:update_crm', 'call-1:update_crm'],
    ]);
    expect(answer.rejected).toEqual([
      {
        provider: 'webhook',
        destination: 'webhook:update_crm',
        receivedAt: new Date(T0).toISOString(),
        status: 429,
        reason: 'limit',
        idempotencyKey: 'call-2:update_crm',
      },
    ]);
  });
});

describe('aftercall sandbox --rate-limit-per-second / --outage', () => {
  function fakeIO() {
    const text = { stdout: '', stderr: '' };
    const sink = (stream: 'stdout' | 'stderr') =>
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          text[stream] += chunk.toString('utf8');
          done();
        },
      });
    const io: CommandIO = { stdin: Readable.from([]), stdout: sink('stdout'), stderr: sink('stderr'), env: {} };
    return { io, text };
  }

  const stops: AbortController[] = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop.abort();
  });

  it('starts with limits and outages in force', async () => {
    const { io, text } = fakeIO();
    const stop = new AbortController();
    stops.push(stop);
    const exit = sandboxCommand(
      [
        '--port',
        '0',
        '--rate-limit-per-second',
        '4',
        '--rate-limit-per-second',
        'resend=1',
        '--outage',
        'twilio:25s',
        '--outage',
        'webhook:update_crm:2m',
        '--gone',
        'webhook:update_ticket',
      ],
      io,
      { signal: stop.signal },
    );
    const output = await waitUntil(
      () => text.stdout,
      (out) => /listening on (\S+)/.test(out),
      'the sandbox to start',
      10_000,
    );
    const url = /listening on (\S+)/.exec(output)![1]!;
    expect(output).toMatch(/limits \* 4 requests per second; resend 1 request per second/);
    expect(output).toMatch(/outages twilio until \S+; webhook:update_crm until \S+/);

    const faults = (await (await fetch(`${url}/_sandbox/faults`)).json()) as FaultConfig;
    expect(faults.limits).toEqual({ '*': { limit: 4, windowMs: 1_000 }, resend: { limit: 1, windowMs: 1_000 } });
    expect(Object.keys(faults.outages)).toEqual(['twilio', 'webhook:update_crm']);
    const { since, until } = faults.outages['webhook:update_crm']!;
    expect(Date.parse(until!) - Date.parse(since)).toBe(120_000);
    expect(Date.parse(faults.outages.twilio!.until!) - Date.parse(faults.outages.twilio!.since)).toBe(25_000);
    expect(faults.gone).toEqual(['webhook:update_ticket']);
    expect(output).toMatch(/gone webhook:update_ticket/);

    const client = twilio(ACCOUNT_SID, 'token', { httpClient: new SandboxTwilioClient(url) });
    expect(await rejectionOf(client.messages.create(sms()))).toMatchObject({ status: 503, code: 20503 });
    const report = (await (await fetch(`${url}/_sandbox/stats?destination=twilio`)).json()) as TrafficReport;
    expect(report.destinations.twilio).toMatchObject({ requests: 1, serverErrors: 1, duringOutage: 1 });

    stop.abort();
    expect(await exit).toBe(0);
  });

  it.each([
    [['--rate-limit-per-second', '0'], /--rate-limit-per-second: expected N or DEST=N .* got "0"/],
    [['--rate-limit-per-second', 'many'], /--rate-limit-per-second: expected N or DEST=N/],
    [['--rate-limit-per-second', 'fax=3'], /--rate-limit-per-second: "fax": expected resend, twilio or webhook:<type>/],
    [['--outage', 'resend'], /--outage: expected DEST:DURATION .* got "resend"/],
    [['--outage', 'fax:25s'], /--outage: expected DEST:DURATION/],
    [['--outage', 'resend:25'], /--outage resend: expected a duration with a unit/],
    [['--outage', 'webhook:update_crm:soon'], /--outage webhook:update_crm: expected a duration with a unit/],
    [['--outage', 'resend:2d'], /--outage resend: expected a duration with a unit, from 1ms to 1d/],
    [['--gone', 'resend'], /--gone: expected webhook:<type>/],
  ])('refuses %j with exit code 2, naming the option', async (args, message) => {
    const { io, text } = fakeIO();
    expect(await sandboxCommand(args, io, { signal: AbortSignal.abort() })).toBe(2);
    expect(text.stderr).toMatch(message);
    expect(text.stdout).toBe('');
  });

  it('documents both options in its help', async () => {
    const { io, text } = fakeIO();
    expect(await sandboxCommand(['--help'], io)).toBe(0);
    expect(text.stdout).toMatch(/--rate-limit-per-second N \| DEST=N/);
    expect(text.stdout).toMatch(/--outage DEST:DURATION/);
    expect(text.stdout).toMatch(/--gone webhook:TYPE/);
    expect(text.stdout).toMatch(/GET \/_sandbox\/stats/);
  });
});
