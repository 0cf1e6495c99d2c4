/**
 * Every adapter's error mapping, as one table per provider: from what the provider
 * answered (HTTP status, and Resend's error name or Twilio's error code, or a gateway's
 * HTML page, or no answer at all) to what decides the job's fate (retryable or terminal,
 * whether it is a configuration error, the Retry-After in milliseconds).
 *
 * The real `resend` and `twilio` SDKs and the webhook adapter talk to a local HTTP server
 * that answers each request with the row under test, in the provider's own error format.
 * Each adapter reads Retry-After against an injected clock, so an HTTP-date maps to an
 * exact delay.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryableDeliveryError, TerminalDeliveryError } from '../src/delivery/errors.js';
import { createResendDelivery } from '../src/delivery/providers/resend/resend.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { createWebhookDelivery } from '../src/delivery/providers/webhook/webhook.js';
import { freePort } from './helpers/free-port.js';
import { deliveryRequest } from './helpers/delivery-request.js';
import { redis, removePrefix, uniquePrefix, WEBHOOK_SECRET } from './helpers/redis.js';

const client = redis();
const prefix = uniquePrefix('error-mapping');
const NOW = Date.parse('2026-11-26T12:00:00Z');
const now = () => NOW;
const IN_2_MINUTES = new Date(NOW + 120_000).toUTCString();
const AN_HOUR_AGO = new Date(NOW - 3_600_000).toUTCString();
const signal = new AbortController().signal;

/** What the local server answers next. */
interface Answer {
  status: number;
  /** JSON body, or the text of an HTML page. */
  body: unknown;
  headers?: Record<string, string>;
}
let next: Answer = { status: 200, body: {} };
let server: Server;
let baseUrl: string;
/** Where nothing listens: the request fails without an answer. */
let deadUrl: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const html = typeof next.body === 'string';
      response.writeHead(next.status, {
        'content-type': html ? 'text/html; charset=utf-8' : 'application/json',
        ...next.headers,
      });
      response.end(html ? next.body : JSON.stringify(next.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  deadUrl = `http://127.0.0.1:${await freePort()}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await removePrefix(client, prefix);
  client.disconnect();
});

const GATEWAY_PAGE = '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n';

interface Mapped {
  kind: 'retryable' | 'terminal';
  configuration: boolean;
  retryAfterMs: number | undefined;
  status: number | undefined;
}

/** What the job handler reads off an adapter's error. */
function mapped(error: unknown): Mapped | { unexpected: unknown } {
  if (error instanceof RetryableDeliveryError) {
    return {
      kind: 'retryable',
      configuration: false,
      retryAfterMs: error.details.retryAfterMs,
      status: error.details.status,
    };
  }
  if (error instanceof TerminalDeliveryError) {
    return {
      kind: 'terminal',
      configuration: error.details.configuration === true,
      retryAfterMs: undefined,
      status: error.details.status,
    };
  }
  return { unexpected: error };
}

const retryable = (status: number | undefined, retryAfterMs?: number): Mapped => ({
  kind: 'retryable',
  configuration: false,
  retryAfterMs,
  status,
});
const terminal = (status: number, configuration = false): Mapped => ({
  kind: 'terminal',
  configuration,
  retryAfterMs: undefined,
  status,
});

type Row = [label: string, answer: Answer | 'no answer', expected: Mapped];

const resendError = (status: number, name: string, headers?: Record<string, string>): Answer => ({
  status,
  body: { statusCode: status, name, message: `${name} (test)` },
  ...(headers && { headers }),
});

const RESEND: Row[] = [
  ['no answer (connection refused)', 'no answer', retryable(undefined)],
  ['408 application_error', resendError(408, 'application_error'), retryable(408)],
  [
    '429 rate_limit_exceeded, retry-after 7',
    resendError(429, 'rate_limit_exceeded', { 'retry-after': '7' }),
    retryable(429, 7_000),
  ],
  ['429 daily_quota_exceeded, no retry-after', resendError(429, 'daily_quota_exceeded'), retryable(429)],
  ['409 concurrent_idempotent_requests', resendError(409, 'concurrent_idempotent_requests'), retryable(409)],
  ['409 invalid_idempotent_request', resendError(409, 'invalid_idempotent_request'), terminal(409)],
  ['500 internal_server_error', resendError(500, 'internal_server_error'), retryable(500)],
  [
    '503 application_error, retry-after as an HTTP date',
    resendError(503, 'application_error', { 'retry-after': IN_2_MINUTES }),
    retryable(503, 120_000),
  ],
  ["a gateway's HTML 502", { status: 502, body: GATEWAY_PAGE }, retryable(502)],
  ['401 missing_api_key', resendError(401, 'missing_api_key'), terminal(401, true)],
  ['401 restricted_api_key', resendError(401, 'restricted_api_key'), terminal(401, true)],
  ['403 invalid_api_key', resendError(403, 'invalid_api_key'), terminal(403, true)],
  ['403 validation_error (sending domain not verified)', resendError(403, 'validation_error'), terminal(403, true)],
  ['422 validation_error', resendError(422, 'validation_error'), terminal(422)],
  ['400 invalid_idempotency_key', resendError(400, 'invalid_idempotency_key'), terminal(400)],
  ['404 not_found', resendError(404, 'not_found'), terminal(404)],
  ['451 security_error', resendError(451, 'security_error'), terminal(451)],
];

const twilioError = (status: number, code: number, headers?: Record<string, string>): Answer => ({
  status,
  body: { code, message: `error ${code} (test)`, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
  ...(headers && { headers }),
});

const TWILIO: Row[] = [
  ['no answer (connection refused)', 'no answer', retryable(undefined)],
  ['408', twilioError(408, 20408), retryable(408)],
  ['429 code 20429, Retry-After 3', twilioError(429, 20429, { 'retry-after': '3' }), retryable(429, 3_000)],
  ['500 code 20500', twilioError(500, 20500), retryable(500)],
  [
    '503 code 20503, Retry-After as an HTTP date',
    twilioError(503, 20503, { 'retry-after': IN_2_MINUTES }),
    retryable(503, 120_000),
  ],
  ["a gateway's HTML 502", { status: 502, body: GATEWAY_PAGE }, retryable(502)],
  ['400 code 21610 (recipient unsubscribed)', twilioError(400, 21610), terminal(400)],
  ["400 code 21211 (invalid 'To')", twilioError(400, 21211), terminal(400)],
  ['401 code 20003 (authentication)', twilioError(401, 20003), terminal(401, true)],
  ['403 code 20403 (forbidden)', twilioError(403, 20403), terminal(403, true)],
  ['404 code 20404', twilioError(404, 20404), terminal(404)],
];

const webhookAnswer = (status: number, headers?: Record<string, string>): Answer => ({
  status,
  body: { error: `answered ${status}` },
  ...(headers && { headers }),
});

const WEBHOOK: Row[] = [
  ['no answer (connection refused)', 'no answer', retryable(undefined)],
  ['408', webhookAnswer(408), retryable(408)],
  ['429, Retry-After 5', webhookAnswer(429, { 'retry-after': '5' }), retryable(429, 5_000)],
  ['429, Retry-After as an HTTP date', webhookAnswer(429, { 'retry-after': IN_2_MINUTES }), retryable(429, 120_000)],
  ['503, Retry-After in the past', webhookAnswer(503, { 'retry-after': AN_HOUR_AGO }), retryable(503, 0)],
  ['503, unreadable Retry-After', webhookAnswer(503, { 'retry-after': 'later' }), retryable(503)],
  ['500', webhookAnswer(500), retryable(500)],
  ["a gateway's HTML 502", { status: 502, body: GATEWAY_PAGE }, retryable(502)],
  ['400', webhookAnswer(400), terminal(400)],
  ['401 (the receiver refuses our signature)', webhookAnswer(401), terminal(401, true)],
  ['403', webhookAnswer(403), terminal(403, true)],
  ['404', webhookAnswer(404), terminal(404)],
  ['422', webhookAnswer(422), terminal(422)],
  ['301 (redirects are not followed)', webhookAnswer(301, { location: 'https://elsewhere.example/' }), terminal(301)],
];

async function outcome(row: Row, send: (base: string) => Promise<unknown>) {
  const [, answer] = row;
  if (answer !== 'no answer') next = answer;
  const result = await send(answer === 'no answer' ? deadUrl : baseUrl).then(
    (receipt) => ({ resolved: receipt }),
    (error: unknown) => mapped(error),
  );
  return result;
}

describe('error mapping of the native providers and the webhook, through the real SDKs', () => {
  it.each(RESEND)('resend: %s', async (...row) => {
    const result = await outcome(row, (base) =>
      createResendDelivery({
        apiKey: 're_test',
        baseUrl: base,
        from: 'Acme <bookings@acme.example>',
        now,
        timeoutMs: 5_000,
      }).sendEmail(
        { to: 'ada@example.com', subject: 's', html: '<p>h</p>', text: 't' },
        deliveryRequest('send_email'),
        signal,
      ),
    );
    expect(result).toEqual(row[2]);
  });

  it.each(TWILIO)('twilio: %s', async (...row) => {
    const result = await outcome(row, (base) =>
      createTwilioDelivery({
        accountSid: `AC${'a'.repeat(32)}`,
        authToken: 'token',
        from: '+14155550000',
        apiBase: base,
        redis: client,
        prefix,
        now,
        timeoutMs: 5_000,
      }).sendSms({ to: '+14155550123', body: 'hello' }, deliveryRequest('schedule_reminder'), signal),
    );
    expect(result).toEqual(row[2]);
  });

  it.each(WEBHOOK)('webhook: %s', async (...row) => {
    const result = await outcome(row, (base) =>
      createWebhookDelivery({
        urls: { update_crm: `${base}/crm` },
        secret: WEBHOOK_SECRET,
        now,
        timeoutMs: 5_000,
      }).deliver(deliveryRequest('update_crm'), signal),
    );
    expect(result).toEqual(row[2]);
  });
});
