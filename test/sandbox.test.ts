/**
 * The provider sandbox, driven by the real `resend` and `twilio` SDKs and by raw fetch, the
 * way tests, the demo and the reliability suite use it.
 */
import { Readable, Writable } from 'node:stream';
import { Resend } from 'resend';
import { Webhook } from 'standardwebhooks';
import twilio from 'twilio';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sandboxCommand } from '../dev/sandbox/sandbox-command.js';
import type { CommandIO } from '../src/cli/io.js';
import { createWebhookDelivery } from '../src/delivery/providers/webhook/webhook.js';
import { asciiKey, conversationTaskKey, jobIdFor } from '../src/tasks/job-id.js';
import { SANDBOX_WEBHOOK_SECRET, startSandbox, type FaultConfig, type Sandbox } from '../dev/sandbox/sandbox.js';
import { waitUntil } from './helpers/wait.js';
import type { TaskBody } from './helpers/webhook-receiver.js';

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const EXPIRES_AT = '2030-01-01T12:30:00.000Z';
const NO_FAULTS: FaultConfig = {
  rateLimitRate: 0,
  retryAfterSeconds: 1,
  serverErrorRate: 0,
  hangRate: 0,
  hangMs: 30_000,
  latencyMs: { min: 0, max: 0, tailRate: 0, tailMs: 0 },
  terminalRecipients: [],
  limits: {},
  outages: {},
  gone: [],
};

type TwilioRequestClient = InstanceType<typeof twilio.RequestClient>;
type TwilioRequestOptions<T> = Parameters<TwilioRequestClient['request']>[0] & { data?: T };
type TwilioResponse<T> = Awaited<ReturnType<TwilioRequestClient['request']>> & { body: T };

/**
 * The twilio SDK's own HTTP client, with `https://api.twilio.com` replaced by the sandbox
 * and aftercall's headers added; it keeps the last answer's headers (RestException has none).
 */
class SandboxTwilioClient extends twilio.RequestClient {
  headers: Record<string, string> = {};
  lastHeaders: Record<string, string> = {};

  constructor(private readonly base: string) {
    super();
  }

  override async request<TData>(opts: TwilioRequestOptions<TData>): Promise<TwilioResponse<TData>> {
    const uri = opts.uri.replace(/^https:\/\/api\.twilio\.com/, this.base);
    const response = await super.request<TData>({ ...opts, uri, headers: { ...opts.headers, ...this.headers } });
    this.lastHeaders = response.headers as Record<string, string>;
    return response;
  }
}

function twilioClient(sandbox: Sandbox, authToken = 'test-token', accountSid = ACCOUNT_SID) {
  const http = new SandboxTwilioClient(sandbox.twilioApiBase);
  return { http, client: twilio(accountSid, authToken, { httpClient: http }) };
}

async function twilioFailure(promise: Promise<unknown>): Promise<{ status: number; code: number | undefined }> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(twilio.RestException);
  const rest = error as InstanceType<typeof twilio.RestException>;
  return { status: rest.status, code: rest.code };
}

/** A raw form POST to the Twilio fake (for many requests, or malformed ones). */
function postSms(
  sandbox: Sandbox,
  form: Record<string, string>,
  authorization = `Basic ${Buffer.from(`${ACCOUNT_SID}:token`).toString('base64')}`,
) {
  return fetch(`${sandbox.twilioApiBase}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization && { authorization }) },
    body: new URLSearchParams(form).toString(),
  });
}

function taskBody(
  conversationId: string,
  type: string,
  payload: unknown = { customer: { id: 'c1', email: 'ada@example.com' } },
  attempt = 1,
): TaskBody {
  const idempotencyKey = conversationTaskKey(conversationId, type);
  return {
    type,
    idempotencyKey,
    conversationId,
    jobId: jobIdFor(idempotencyKey),
    attempt,
    createdAt: '2030-01-01T12:00:00.000Z',
    expiresAt: EXPIRES_AT,
    payload,
  };
}

const signer = new Webhook(SANDBOX_WEBHOOK_SECRET);

/** A Standard Webhooks POST, signed like aftercall's adapter signs it. */
function postWebhook(
  sandbox: Sandbox,
  body: TaskBody,
  options: { signWith?: Webhook; id?: string; send?: (raw: string) => string } = {},
) {
  const raw = JSON.stringify(body);
  const id = options.id ?? asciiKey(body.idempotencyKey);
  const at = new Date();
  return fetch(sandbox.webhookUrl(body.type), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': (options.signWith ?? signer).sign(id, at, raw),
    },
    body: options.send ? options.send(raw) : raw,
  });
}

async function status(response: Promise<Response>): Promise<number> {
  const answered = await response;
  await answered.arrayBuffer();
  return answered.status;
}

const email = (overrides: Record<string, unknown> = {}) => ({
  from: 'Bookings <bookings@example.com>',
  to: ['ada@example.com'],
  subject: 'Your booking',
  html: '<p>Booked</p>',
  text: 'Booked',
  headers: { 'X-Aftercall-Expires-At': EXPIRES_AT, 'X-Aftercall-Type': 'send_email' },
  ...overrides,
});

let sandbox: Sandbox;
let resend: Resend;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, seed: 2024 });
  resend = new Resend('re_test_key', { baseUrl: sandbox.resendBaseUrl });
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  sandbox.setFaults(NO_FAULTS);
  sandbox.reset();
});

describe('the Resend fake, through the resend SDK', () => {
  it('accepts an e-mail and records what was sent, with the decoded idempotency key', async () => {
    const key = 'call-ü 7/1:send_email';
    const { data, error } = await resend.emails.send(email(), { idempotencyKey: asciiKey(key) });
    expect(error).toBeNull();
    expect(data?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const [delivery, ...rest] = sandbox.deliveries({ provider: 'resend' });
    expect(rest).toEqual([]);
    expect(delivery).toMatchObject({
      provider: 'resend',
      id: data!.id,
      idempotencyKey: key,
      expiresAt: EXPIRES_AT,
      type: 'send_email',
      to: 'ada@example.com',
      subject: 'Your booking',
      html: '<p>Booked</p>',
      text: 'Booked',
    });
    expect(Date.parse(delivery!.receivedAt)).not.toBeNaN();
  });

  it('answers a repeated key and body with the first answer, a different body with 409 invalid_idempotent_request', async () => {
    const first = await resend.emails.send(email(), { idempotencyKey: 'conv-1%3Asend_email' });
    const again = await resend.emails.send(email(), { idempotencyKey: 'conv-1%3Asend_email' });
    expect(again.data?.id).toBe(first.data?.id);
    const changed = await resend.emails.send(email({ subject: 'Something else' }), {
      idempotencyKey: 'conv-1%3Asend_email',
    });
    expect(changed.data).toBeNull();
    expect(changed.error).toMatchObject({ statusCode: 409, name: 'invalid_idempotent_request' });
    expect(sandbox.deliveries()).toHaveLength(1);

    const otherKey = await resend.emails.send(email(), { idempotencyKey: 'conv-2%3Asend_email' });
    expect(otherKey.data?.id).not.toBe(first.data?.id);
    const withoutKey = await resend.emails.send(email());
    expect(withoutKey.error).toBeNull();
    expect(sandbox.deliveries().map((delivery) => delivery.idempotencyKey)).toEqual([
      'conv-1:send_email',
      'conv-2:send_email',
      null,
    ]);
  });

  it('remembers a key for 24 hours of its clock', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const clocked = await startSandbox({ now: () => now });
    try {
      const client = new Resend('re_test_key', { baseUrl: clocked.resendBaseUrl });
      const first = await client.emails.send(email(), { idempotencyKey: 'k' });
      now += 24 * 3_600_000 - 1;
      expect((await client.emails.send(email(), { idempotencyKey: 'k' })).data?.id).toBe(first.data?.id);
      now += 2;
      const later = await client.emails.send(email(), { idempotencyKey: 'k' });
      expect(later.data?.id).toBeDefined();
      expect(later.data?.id).not.toBe(first.data?.id);
      expect(clocked.deliveries().map((delivery) => delivery.receivedAt)).toEqual([
        '2030-01-01T00:00:00.000Z',
        '2030-01-02T00:00:00.001Z',
      ]);
    } finally {
      await clocked.close();
    }
  });

  it('answers 409 concurrent_idempotent_requests while the first request with the key is still in flight', async () => {
    sandbox.setFaults({ latencyMs: { min: 1200, max: 1200, tailRate: 0, tailMs: 0 } });
    const first = resend.emails.send(email(), { idempotencyKey: 'in-flight' });
    await waitUntil(
      () => sandbox.stats().requests,
      (requests) => requests === 1,
      'the first request to arrive',
    );
    const second = await resend.emails.send(email(), { idempotencyKey: 'in-flight' });
    expect(second.error).toMatchObject({ statusCode: 409, name: 'concurrent_idempotent_requests' });
    const firstAnswer = await first;
    expect(firstAnswer.error).toBeNull();
    // Its arrival is stamped when it came (the time the limit counts); its receipt after the latency.
    const [delivered] = sandbox.deliveries();
    expect(Date.parse(delivered!.receivedAt) - Date.parse(delivered!.arrivedAt)).toBeGreaterThanOrEqual(1_200);
    sandbox.setFaults({ latencyMs: { min: 0, max: 0 } });
    const third = await resend.emails.send(email(), { idempotencyKey: 'in-flight' });
    expect(third.data?.id).toBe(firstAnswer.data?.id);
    expect(sandbox.deliveries()).toHaveLength(1);
  });

  it('processes a hung request: the client times out, its retry gets the first answer, and one e-mail exists', async () => {
    sandbox.setFaults({ hangRate: 1, hangMs: 20_000 });
    const timedOut = await resend.emails.send(email(), {
      idempotencyKey: 'hung-1',
      signal: AbortSignal.timeout(1_000),
    } as { idempotencyKey: string });
    expect(timedOut.data).toBeNull();
    expect(timedOut.error?.statusCode).toBeNull();
    const [arrived] = sandbox.deliveries();
    expect(arrived?.idempotencyKey).toBe('hung-1');
    expect(sandbox.stats().faults.hung).toBe(1);

    sandbox.setFaults({ hangRate: 0 });
    const retry = await resend.emails.send(email(), { idempotencyKey: 'hung-1' });
    expect(retry.data?.id).toBe(arrived!.id);
    expect(sandbox.deliveries()).toHaveLength(1);
  });

  it('validates and authenticates like Resend, and records nothing it refused', async () => {
    const { subject: _subject, ...withoutSubject } = email();
    const noSubject = await resend.emails.send(withoutSubject as unknown as Parameters<Resend['emails']['send']>[0]);
    expect(noSubject.error).toMatchObject({ statusCode: 422, name: 'validation_error' });
    expect(noSubject.error?.message).toMatch(/`subject`/);
    const noContent = await resend.emails.send(email({ html: undefined, text: undefined }));
    expect(noContent.error).toMatchObject({ statusCode: 422, name: 'validation_error' });
    expect(noContent.error?.message).toMatch(/`html` or `text`/);
    const badExpiry = await resend.emails.send(email({ headers: { 'X-Aftercall-Expires-At': 'tomorrow' } }));
    expect(badExpiry.error?.message).toMatch(/X-Aftercall-Expires-At/);

    const invalidKey = await new Resend('re_invalid', { baseUrl: sandbox.resendBaseUrl }).emails.send(email());
    expect(invalidKey.error).toMatchObject({ statusCode: 403, name: 'invalid_api_key' });
    const missing = await fetch(`${sandbox.resendBaseUrl}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(email()),
    });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ statusCode: 401, name: 'missing_api_key' });
    const longKey = await resend.emails.send(email(), { idempotencyKey: 'k'.repeat(257) });
    expect(longKey.error).toMatchObject({ statusCode: 400, name: 'invalid_idempotency_key' });

    expect(sandbox.deliveries()).toEqual([]);
    expect(sandbox.stats().byProvider.resend).toBe(6);
  });

  it('accepts only the configured key when given one', async () => {
    const strict = await startSandbox({ credentials: { resendApiKey: 're_right' } });
    try {
      const wrong = await new Resend('re_wrong', { baseUrl: strict.resendBaseUrl }).emails.send(email());
      expect(wrong.error).toMatchObject({ statusCode: 403, name: 'invalid_api_key' });
      const right = await new Resend('re_right', { baseUrl: strict.resendBaseUrl }).emails.send(email());
      expect(right.error).toBeNull();
    } finally {
      await strict.close();
    }
  });
});

describe('the Twilio fake, through the twilio SDK', () => {
  it('creates queued messages the SDK can read, and records every send: no idempotency, duplicates show', async () => {
    const { client, http } = twilioClient(sandbox);
    http.headers = {
      'X-Aftercall-Idempotency-Key': asciiKey('call-ü:schedule_reminder'),
      'X-Aftercall-Expires-At': EXPIRES_AT,
      'X-Aftercall-Type': 'schedule_reminder',
    };
    const first = await client.messages.create({
      to: '+14155550100',
      from: '+15005550006',
      body: 'See you tomorrow at 10:00.',
    });
    const second = await client.messages.create({
      to: '+14155550100',
      from: '+15005550006',
      body: 'See you tomorrow at 10:00.',
    });
    expect(first.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(second.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(second.sid).not.toBe(first.sid);
    expect(first).toMatchObject({
      accountSid: ACCOUNT_SID,
      to: '+14155550100',
      from: '+15005550006',
      body: 'See you tomorrow at 10:00.',
      status: 'queued',
      direction: 'outbound-api',
      numSegments: '1',
    });
    expect(first.dateCreated).toBeInstanceOf(Date);
    expect(Number.isNaN(first.dateCreated.getTime())).toBe(false);
    expect(first.uri).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${first.sid}.json`);
    expect(http.lastHeaders['twilio-request-id']).toMatch(/^RQ[0-9a-f]{32}$/);

    const deliveries = sandbox.deliveries({ provider: 'twilio' });
    expect(deliveries.map((delivery) => delivery.id)).toEqual([first.sid, second.sid]);
    for (const delivery of deliveries) {
      expect(delivery).toMatchObject({
        idempotencyKey: 'call-ü:schedule_reminder',
        expiresAt: EXPIRES_AT,
        type: 'schedule_reminder',
        to: '+14155550100',
        body: 'See you tomorrow at 10:00.',
      });
    }

    const viaService = await client.messages.create({
      to: '+14155550100',
      messagingServiceSid: `MG${'a'.repeat(32)}`,
      body: 'Hi',
    });
    expect(viaService.from).toBeNull();
    expect(viaService.messagingServiceSid).toBe(`MG${'a'.repeat(32)}`);
  });

  it('answers bad credentials with 401 code 20003', async () => {
    expect(
      await twilioFailure(
        twilioClient(sandbox, 'invalid').client.messages.create({
          to: '+14155550100',
          from: '+15005550006',
          body: 'x',
        }),
      ),
    ).toEqual({ status: 401, code: 20003 });
    const missing = await postSms(sandbox, { To: '+14155550100', From: '+15005550006', Body: 'x' }, '');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({
      code: 20003,
      message: 'Authenticate',
      more_info: 'https://www.twilio.com/docs/errors/20003',
      status: 401,
    });
    const otherAccount = await postSms(
      sandbox,
      { To: '+14155550100', From: '+15005550006', Body: 'x' },
      `Basic ${Buffer.from(`AC${'f'.repeat(32)}:token`).toString('base64')}`,
    );
    expect(otherAccount.status).toBe(401);
    await otherAccount.arrayBuffer();

    const strict = await startSandbox({ credentials: { twilioAuthToken: 'right' } });
    try {
      expect(
        await twilioFailure(
          twilioClient(strict, 'wrong').client.messages.create({ to: '+14155550100', from: '+15005550006', body: 'x' }),
        ),
      ).toEqual({ status: 401, code: 20003 });
      expect(
        (
          await twilioClient(strict, 'right').client.messages.create({
            to: '+14155550100',
            from: '+15005550006',
            body: 'x',
          })
        ).status,
      ).toBe('queued');
    } finally {
      await strict.close();
    }
    expect(sandbox.deliveries()).toEqual([]);
  });

  it('validates like Twilio: sender, number format, body length', async () => {
    const { client } = twilioClient(sandbox);
    expect(await twilioFailure(client.messages.create({ to: '+14155550100', body: 'x' }))).toEqual({
      status: 400,
      code: 21603,
    });
    expect(
      await twilioFailure(client.messages.create({ to: '0155 5550100', from: '+15005550006', body: 'x' })),
    ).toEqual({ status: 400, code: 21211 });
    expect(await twilioFailure(client.messages.create({ to: '+14155550100', from: '+15005550006' }))).toEqual({
      status: 400,
      code: 21602,
    });
    expect(
      await twilioFailure(client.messages.create({ to: '+14155550100', from: '+15005550006', body: 'x'.repeat(1601) })),
    ).toEqual({ status: 400, code: 21617 });
    expect(sandbox.deliveries()).toEqual([]);
  });
});

describe('the Standard Webhooks receiver', () => {
  it('records every signed request as a raw receipt, duplicates included', async () => {
    const body = taskBody(
      'call-ü 9',
      'update_crm',
      { customer: { id: 'c9', email: 'grace@example.com', phone: '+14155550111' } },
      1,
    );
    expect(await status(postWebhook(sandbox, body))).toBe(200);
    expect(await status(postWebhook(sandbox, { ...body, attempt: 2 }))).toBe(200);
    const deliveries = sandbox.deliveries({ provider: 'webhook' });
    expect(deliveries).toHaveLength(2);
    expect(new Set(deliveries.map((delivery) => delivery.idempotencyKey))).toEqual(new Set(['call-ü 9:update_crm']));
    expect(deliveries[0]).toMatchObject({
      type: 'update_crm',
      expiresAt: EXPIRES_AT,
      to: 'grace@example.com',
      path: '/webhooks/update_crm',
      attempt: 1,
    });
    expect(deliveries[1]?.attempt).toBe(2);
    expect(deliveries[0]?.id).not.toBe(deliveries[1]?.id);
  });

  it("accepts aftercall's own webhook adapter", async () => {
    const adapter = createWebhookDelivery({
      urls: { route_callback: sandbox.webhookUrl('route_callback') },
      secret: sandbox.webhookSecret,
    });
    const receipt = await adapter.deliver(
      {
        type: 'route_callback',
        jobId: 'c%3Aroute_callback',
        idempotencyKey: 'c:route_callback',
        conversationId: 'c',
        attempt: 3,
        createdAt: Date.now(),
        expiresAt: Date.parse(EXPIRES_AT),
        payload: { reason: 'billing' },
      },
      AbortSignal.timeout(5_000),
    );
    expect(receipt.status).toBe(200);
    expect(sandbox.deliveries()).toMatchObject([
      {
        provider: 'webhook',
        idempotencyKey: 'c:route_callback',
        type: 'route_callback',
        attempt: 3,
        expiresAt: EXPIRES_AT,
        to: null,
      },
    ]);
  });

  it('rejects a wrong signature or a tampered body with 401, and a malformed body with 400 naming the field', async () => {
    const body = taskBody('c-sig', 'update_ticket');
    const stranger = new Webhook(`whsec_${Buffer.from('some-other-secret-0123456789abcd').toString('base64')}`);
    expect(await status(postWebhook(sandbox, body, { signWith: stranger }))).toBe(401);
    expect(await status(postWebhook(sandbox, body, { send: (raw) => raw.replace('"attempt":1', '"attempt":9') }))).toBe(
      401,
    );
    expect(await status(postWebhook(sandbox, body, { id: 'some-other-id' }))).toBe(400);

    const malformed = await postWebhook(sandbox, { ...body, expiresAt: 'soon' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ issues: [{ path: 'expiresAt' }] });
    expect(sandbox.deliveries()).toEqual([]);
    expect(sandbox.stats().byProvider.webhook).toBe(4);
  });
});

describe('faults', () => {
  it('fails listed recipients terminally at all three providers, and only them', async () => {
    sandbox.setFaults({ terminalRecipients: ['blocked@example.com', '+14155550199'] });
    const mail = await resend.emails.send(email({ to: ['Blocked <Blocked@Example.com>'] }));
    expect(mail.error).toMatchObject({ statusCode: 422, name: 'validation_error' });
    const { client } = twilioClient(sandbox);
    expect(
      await twilioFailure(client.messages.create({ to: '+14155550199', from: '+15005550006', body: 'x' })),
    ).toEqual({ status: 400, code: 21211 });
    expect(
      await status(
        postWebhook(sandbox, taskBody('c-t', 'follow_up_survey', { customer: { id: 'c', phone: '+14155550199' } })),
      ),
    ).toBe(422);
    expect(sandbox.stats().faults.terminal).toBe(3);
    expect(sandbox.deliveries()).toEqual([]);

    expect((await resend.emails.send(email())).error).toBeNull();
    expect((await client.messages.create({ to: '+14155550100', from: '+15005550006', body: 'x' })).status).toBe(
      'queued',
    );
    expect(
      await status(
        postWebhook(sandbox, taskBody('c-t', 'follow_up_survey', { customer: { id: 'c', phone: '+14155550100' } })),
      ),
    ).toBe(200);
    expect(sandbox.deliveries().map((delivery) => delivery.provider)).toEqual(['resend', 'twilio', 'webhook']);
  });

  it('rate-limits with 429 and Retry-After at all three providers', async () => {
    sandbox.setFaults({ rateLimitRate: 1, retryAfterSeconds: 7 });
    const mail = await resend.emails.send(email(), { idempotencyKey: 'limited' });
    expect(mail.error).toMatchObject({ statusCode: 429, name: 'rate_limit_exceeded' });
    expect(mail.headers?.['retry-after']).toBe('7');
    const { client, http } = twilioClient(sandbox);
    expect(
      await twilioFailure(client.messages.create({ to: '+14155550100', from: '+15005550006', body: 'x' })),
    ).toEqual({ status: 429, code: 20429 });
    expect(http.lastHeaders['retry-after']).toBe('7');
    const hook = await postWebhook(sandbox, taskBody('c-rl', 'update_crm'));
    expect(hook.status).toBe(429);
    expect(hook.headers.get('retry-after')).toBe('7');
    await hook.arrayBuffer();
    expect(sandbox.stats().faults.rateLimited).toBe(3);
    expect(sandbox.deliveries()).toEqual([]);

    // A rate-limited request left no idempotency memory: its retry is processed.
    sandbox.setFaults({ rateLimitRate: 0 });
    expect((await resend.emails.send(email(), { idempotencyKey: 'limited' })).error).toBeNull();
    expect(sandbox.deliveries()).toHaveLength(1);
  });

  it('answers server errors with 500, 503 or a gateway 502 the SDKs still read', async () => {
    sandbox.setFaults({ serverErrorRate: 1 });
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i += 1) {
      const { error } = await resend.emails.send(email());
      expect([500, 502, 503]).toContain(error?.statusCode);
      if (error?.statusCode === 502) expect(error.name).toBe('application_error');
      statuses.add(error!.statusCode!);
    }
    expect([...statuses].sort()).toEqual([500, 502, 503]);
    const { client } = twilioClient(sandbox);
    const failure = await twilioFailure(
      client.messages.create({ to: '+14155550100', from: '+15005550006', body: 'x' }),
    );
    expect([500, 502, 503]).toContain(failure.status);
    expect(sandbox.stats().faults.serverErrors).toBe(31);
    expect(sandbox.deliveries()).toEqual([]);
  });

  it('draws roughly the configured fractions over 1,000 requests, and the same ones again from the same seed', async () => {
    const faults = { rateLimitRate: 0.2, serverErrorRate: 0.1, hangRate: 0.05, hangMs: 0 };
    const run = async (target: Sandbox) => {
      target.setFaults(faults);
      const statuses: number[] = [];
      for (let i = 0; i < 1000; i += 1)
        statuses.push(await status(postSms(target, { To: '+14155550100', From: '+15005550006', Body: `n${i}` })));
      return statuses;
    };
    const count = (statuses: number[], accept: (code: number) => boolean) => statuses.filter(accept).length;

    sandbox.reset();
    const first = await run(sandbox);
    const limited = count(first, (code) => code === 429);
    const failed = count(first, (code) => code >= 500);
    const created = count(first, (code) => code === 201);
    expect(limited).toBeGreaterThan(140);
    expect(limited).toBeLessThan(260);
    expect(failed).toBeGreaterThan(55);
    expect(failed).toBeLessThan(145);
    expect(created + limited + failed).toBe(1000);
    const { hung } = sandbox.stats().faults;
    expect(hung).toBeGreaterThan(20);
    expect(hung).toBeLessThan(85);
    // Hung requests were processed: every 201 and every hang is a delivery, nothing else.
    expect(sandbox.deliveries()).toHaveLength(created);

    sandbox.reset(); // restarts the generator from the seed
    expect(await run(sandbox)).toEqual(first);
    expect(sandbox.stats().faults.hung).toBe(hung);

    const other = await startSandbox({ seed: 7 });
    try {
      expect(await run(other)).not.toEqual(first);
    } finally {
      await other.close();
    }
  });

  it('ends held answers when the sandbox closes', async () => {
    const held = await startSandbox({ faults: { hangRate: 1, hangMs: 60_000 } });
    const answer = postWebhook(held, taskBody('c-held', 'update_crm'));
    const outcome = answer.then(
      () => 'answered',
      () => 'connection closed',
    );
    await waitUntil(
      () => held.deliveries().length,
      (length) => length === 1,
      'the held request to be recorded',
    );
    await held.close();
    expect(await outcome).toBe('connection closed');
  });
});

describe('the control and read endpoints', () => {
  const control = (path: string, init?: RequestInit) => fetch(`${sandbox.url}/_sandbox/${path}`, init);
  const putFaults = (change: unknown) =>
    control('faults', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: typeof change === 'string' ? change : JSON.stringify(change),
    });

  it('reads and changes the faults while the sandbox runs, naming invalid fields', async () => {
    expect(await (await control('faults')).json()).toEqual(NO_FAULTS);
    const changed = await putFaults({ rateLimitRate: 1, latencyMs: { max: 5 } });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toMatchObject({
      rateLimitRate: 1,
      latencyMs: { min: 0, max: 5, tailRate: 0, tailMs: 0 },
    });
    expect(await status(postWebhook(sandbox, taskBody('c-ctl', 'update_crm')))).toBe(429);

    const invalid = async (change: unknown, path: string) => {
      const response = await putFaults(change);
      expect(response.status).toBe(400);
      const answer = (await response.json()) as { error: string; issues: { path: string }[] };
      expect(answer.issues.map((issue) => issue.path)).toContain(path);
    };
    await invalid({ rateLimitRate: 2 }, 'rateLimitRate');
    await invalid({ rateLimitRate: 0.6, serverErrorRate: 0.6 }, 'rateLimitRate + serverErrorRate + hangRate');
    await invalid({ latencyMs: { min: 10, max: 1 } }, 'latencyMs.max');
    await invalid({ ratelimit: 0.5 }, 'ratelimit');
    await invalid({ terminalRecipients: 'a@example.com' }, 'terminalRecipients');
    await invalid('{not json', '(root)');
    expect(sandbox.faults().rateLimitRate).toBe(1);
    expect(() => sandbox.setFaults({ hangMs: -1 })).toThrow(/hangMs/);

    expect((await putFaults({ rateLimitRate: 0 })).status).toBe(200);
    expect(await status(postWebhook(sandbox, taskBody('c-ctl', 'update_crm')))).toBe(200);
  });

  it('lists deliveries by provider with the counters, and forgets everything on reset', async () => {
    const first = await resend.emails.send(email(), { idempotencyKey: 'reset-me' });
    expect(await status(postWebhook(sandbox, taskBody('c-read', 'update_crm')))).toBe(200);

    const all = (await (await control('deliveries')).json()) as {
      deliveries: { provider: string }[];
      stats: { requests: number; byProvider: Record<string, number> };
    };
    expect(all.deliveries.map((delivery) => delivery.provider)).toEqual(['resend', 'webhook']);
    expect(all.stats).toMatchObject({ requests: 2, byProvider: { resend: 1, twilio: 0, webhook: 1 } });
    const webhooks = (await (await control('deliveries?provider=webhook')).json()) as {
      deliveries: { provider: string }[];
    };
    expect(webhooks.deliveries.map((delivery) => delivery.provider)).toEqual(['webhook']);
    const wrong = await control('deliveries?provider=fax');
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ issues: [{ path: 'provider' }] });
    expect((await control('health')).status).toBe(200);

    expect((await control('reset', { method: 'POST' })).status).toBe(200);
    expect(sandbox.deliveries()).toEqual([]);
    expect(sandbox.stats().requests).toBe(0);
    const again = await resend.emails.send(email(), { idempotencyKey: 'reset-me' });
    expect(again.data?.id).not.toBe(first.data?.id);
  });
});

describe('aftercall sandbox (the command)', () => {
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

  async function started(text: { stdout: string }): Promise<string> {
    const output = await waitUntil(
      () => text.stdout,
      (out) => /listening on (\S+)/.test(out),
      'the sandbox to start',
      10_000,
    );
    return /listening on (\S+)/.exec(output)![1]!;
  }

  it('starts with its options, prints the environment a worker needs, and stops when told to', async () => {
    const { io, text } = fakeIO();
    const stop = new AbortController();
    const exit = sandboxCommand(
      [
        '--port',
        '0',
        '--seed',
        '7',
        '--rate-limit',
        '0.25',
        '--hangs',
        '0.1',
        '--hang-ms',
        '500',
        '--retry-after',
        '3',
        '--latency',
        '1-3',
        '--terminal',
        'no@example.com, +14155550199',
      ],
      io,
      { signal: stop.signal },
    );
    const url = await started(text);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const expected = {
      RESEND_BASE_URL: url,
      TWILIO_API_BASE: url,
      EMAIL_WEBHOOK_URL: `${url}/webhooks/send_email`,
      CRM_WEBHOOK_URL: `${url}/webhooks/update_crm`,
      REMINDERS_WEBHOOK_URL: `${url}/webhooks/schedule_reminder`,
      TICKETS_WEBHOOK_URL: `${url}/webhooks/update_ticket`,
      CALLBACKS_WEBHOOK_URL: `${url}/webhooks/route_callback`,
      SURVEYS_WEBHOOK_URL: `${url}/webhooks/follow_up_survey`,
      WEBHOOK_SECRET: SANDBOX_WEBHOOK_SECRET,
    };
    for (const [name, value] of Object.entries(expected)) expect(text.stdout).toContain(`export ${name}=${value}\n`);
    expect(text.stdout).toContain('(seed 7)');

    const faults = (await (await fetch(`${url}/_sandbox/faults`)).json()) as FaultConfig;
    expect(faults).toEqual({
      ...NO_FAULTS,
      rateLimitRate: 0.25,
      hangRate: 0.1,
      hangMs: 500,
      retryAfterSeconds: 3,
      latencyMs: { min: 1, max: 3, tailRate: 0, tailMs: 0 },
      terminalRecipients: ['no@example.com', '+14155550199'],
    });

    stop.abort();
    expect(await exit).toBe(0);
    expect(text.stdout).toMatch(/stopped/);
    await expect(fetch(`${url}/_sandbox/health`)).rejects.toThrow();
  });

  it('stops on SIGTERM and leaves no signal handler behind', async () => {
    const before = process.listenerCount('SIGTERM');
    const { io, text } = fakeIO();
    const exit = sandboxCommand(['--port', '0'], io);
    const url = await started(text);
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await exit).toBe(0);
    expect(process.listenerCount('SIGTERM')).toBe(before);
    await expect(fetch(`${url}/_sandbox/health`)).rejects.toThrow();
  });

  it.each([
    [['--rate-limit', '2'], /--rate-limit: expected a fraction from 0 to 1/],
    [['--rate-limit', '0.6', '--hangs', '0.5'], /--rate-limit \+ --server-errors \+ --hangs/],
    [['--latency', '9-3'], /--latency: expected MIN-MAX/],
    [['--port', 'http'], /--port: expected a port/],
    [['--hang-ms', '1.5'], /--hang-ms: expected milliseconds/],
    [['--seed=x'], /--seed: expected an integer/],
    [['--terminal', 'nobody'], /--terminal: .*"nobody"/],
    [['--webhook-secret', 'not-a-secret'], /--webhook-secret: expected whsec_/],
    // 12 bytes: a valid Standard Webhooks key, but shorter than a worker's WEBHOOK_SECRET may be
    [
      ['--webhook-secret', `whsec_${Buffer.alloc(12, 7).toString('base64')}`],
      /--webhook-secret: expected whsec_ followed by at least 16 bytes/,
    ],
    [['--colour'], /colour/],
  ])('refuses %j with exit code 2, naming the option', async (args, message) => {
    const { io, text } = fakeIO();
    // Pre-aborted: a sandbox started by mistake stops at once instead of running on.
    expect(await sandboxCommand(args, io, { signal: AbortSignal.abort() })).toBe(2);
    expect(text.stderr).toMatch(message);
    expect(text.stdout).toBe('');
  });

  it('prints its help, and exits 1 when the port is taken', async () => {
    const help = fakeIO();
    expect(await sandboxCommand(['--help'], help.io)).toBe(0);
    expect(help.text.stdout).toMatch(/--rate-limit F/);

    const taken = fakeIO();
    const port = new URL(sandbox.url).port;
    expect(await sandboxCommand(['--port', port], taken.io, { signal: AbortSignal.abort() })).toBe(1);
    expect(taken.text.stderr).toMatch(/in use/);
  });
});
