/**
 * OpenTelemetry, end to end: one trace from the voice agent's call to the provider's request,
 * across a retry.
 *
 * A real OTLP/HTTP receiver runs on loopback (a small node:http server decoding the JSON
 * export). This process plays the voice agent: it starts the Node SDK the way `aftercall
 * worker` does (cli/tracing.ts, standard OTEL_* variables) and calls conversationEnded inside
 * a span of its own. `aftercall worker` runs as a child process with OTEL_EXPORTER_OTLP_ENDPOINT
 * pointing at the receiver; the webhook receiver answers the CRM update's first request 503
 * and its second 200.
 *
 * Resend and Twilio: the worker's real `resend` and `twilio` SDKs talk to the provider sandbox
 * through a recording proxy on loopback, which keeps each request's method, URL, headers and
 * answered status, and answers the first e-mail 503 and the first SMS 500 (each in its
 * provider's error shape) before it forwards anything else to the sandbox.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '../src/cli/tracing.js';
import { createProducer } from '../src/producer/producer.js';
import { createResendDelivery } from '../src/delivery/providers/resend/resend.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { startSandbox, type Sandbox } from '../dev/sandbox/sandbox.js';
import { startChildWorker, type ChildWorker } from './helpers/child-worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, testEnv, TEST_REDIS, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number };
  attributes?: { key: string; value: Record<string, unknown> }[];
  events?: { name: string }[];
  service: string;
}

const prefix = uniquePrefix('tracing');
const client = redis();
const spans: ExportedSpan[] = [];
let collector: Server;
let collectorUrl = '';
let receiver: WebhookReceiver;
let worker: ChildWorker;
let tracing: Tracing;
let sandbox: Sandbox;
let proxy: Server;
let proxyUrl = '';
const TWILIO_SID = `AC${'b'.repeat(32)}`;
const TWILIO_MESSAGES = `/2010-04-01/Accounts/${TWILIO_SID}/Messages.json`;

/** A request to Resend or Twilio as it went over the wire, and the status it was answered. */
interface ProviderExchange {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  status: number;
}
const exchanges: ProviderExchange[] = [];
const failedOnce = new Set<string>();

/** Answers the first POST of each provider with a server error, forwards the rest to the sandbox. */
function startProviderProxy(upstream: string): Server {
  return createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = new URL(request.url ?? '/', 'http://proxy').pathname;
      const exchange = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, status: 0 };
      exchanges.push(exchange);
      const provider = path === '/emails' ? 'resend' : path === TWILIO_MESSAGES ? 'twilio' : undefined;
      if (request.method === 'POST' && provider && !failedOnce.has(provider)) {
        failedOnce.add(provider);
        exchange.status = provider === 'resend' ? 503 : 500;
        const error =
          provider === 'resend'
            ? { statusCode: 503, name: 'application_error', message: 'Service unavailable' }
            : {
                code: 20500,
                message: 'Internal Server Error',
                more_info: 'https://www.twilio.com/docs/errors/20500',
                status: 500,
              };
        response.writeHead(exchange.status, { 'content-type': 'application/json' }).end(JSON.stringify(error));
        return;
      }
      const forwarded = httpRequest(
        `${upstream}${request.url}`,
        { method: request.method, headers: { ...request.headers, host: new URL(upstream).host } },
        (answer) => {
          exchange.status = answer.statusCode ?? 0;
          response.writeHead(exchange.status, answer.headers);
          answer.pipe(response);
        },
      );
      forwarded.on('error', (error) => response.destroy(error));
      forwarded.end(body);
    });
  });
}

/** OTLP/JSON ids are hex; accept base64 too. */
const hex = (id: string | undefined) =>
  !id ? '' : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');
const attribute = (span: ExportedSpan, key: string) => {
  const value = span.attributes?.find((entry) => entry.key === key)?.value;
  return value && (value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.boolValue));
};

beforeAll(async () => {
  collector = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.url === '/v1/traces' && String(request.headers['content-type']).includes('json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: ExportedSpan[] }[];
          }[];
        };
        for (const resourceSpans of body.resourceSpans) {
          const service =
            resourceSpans.resource.attributes.find((entry) => entry.key === 'service.name')?.value.stringValue ?? '';
          for (const scope of resourceSpans.scopeSpans)
            for (const span of scope.spans)
              spans.push({
                ...span,
                traceId: hex(span.traceId),
                spanId: hex(span.spanId),
                parentSpanId: hex(span.parentSpanId),
                links: (span.links ?? []).map((link) => ({ traceId: hex(link.traceId), spanId: hex(link.spanId) })),
                service,
              });
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const address = collector.address() as { port: number };
  collectorUrl = `http://127.0.0.1:${address.port}`;
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
  tracing = await startTracing({ ...otel, OTEL_SERVICE_NAME: 'voice-agent' }, 'voice-agent');
  receiver = await startReceiver();
  sandbox = await startSandbox({ port: 0, seed: 11 });
  proxy = startProviderProxy(sandbox.url);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  receiver.answer = (receipt) => {
    const seen = receiver.receipts.filter((r) => r.body.idempotencyKey === receipt.body.idempotencyKey).length;
    return { status: receipt.body.type === 'update_crm' && seen === 1 ? 503 : 200 };
  };
  const providers = {
    RESEND_API_KEY: 're_test_key',
    RESEND_BASE_URL: proxyUrl,
    EMAIL_FROM: 'Acme <bookings@acme.example>',
    TWILIO_ACCOUNT_SID: TWILIO_SID,
    TWILIO_AUTH_TOKEN: 'test-token',
    TWILIO_FROM: '+14155550000',
    TWILIO_API_BASE: proxyUrl,
  };
  worker = startChildWorker({ ...testEnv(prefix, receiver.url), ...otel, ...providers, CIRCUIT_MIN_CALLS: '100000' }, [
    '--queues',
    'update_crm,send_email,schedule_reminder',
    '--no-sweeper',
  ]);
  await worker.waitForLog((line) => line.msg === 'worker started');
}, 60_000);

afterAll(async () => {
  worker?.kill('SIGTERM');
  await worker?.exited;
  await tracing?.shutdown();
  await receiver?.close();
  await new Promise((resolve) => proxy?.close(resolve));
  await sandbox?.close();
  await new Promise((resolve) => collector?.close(resolve));
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('tracing', () => {
  it('shows one trace for a conversation, from the producer to the provider request, across a retry', async () => {
    expect(tracing.enabled).toBe(true);
    const producer = createProducer({ redis: TEST_REDIS, prefix });
    const conversationId = 'traced-1';
    let traceId = '';
    try {
      await trace.getTracer('voice-agent').startActiveSpan('voice-agent call', async (span) => {
        traceId = span.spanContext().traceId;
        await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
        span.end();
      });
    } finally {
      await producer.close();
    }
    await waitUntil(
      async () => receiver.receipts.filter((r) => r.body.conversationId === conversationId).length,
      (n) => n === 2,
      'two webhook requests (503, then 200)',
    );
    const inTrace = () => spans.filter((span) => span.traceId === traceId);
    await waitUntil(
      async () => inTrace().filter((span) => span.name === 'POST').length,
      (n) => n === 2,
      'both provider requests exported',
      20_000,
    );
    const all = inTrace();
    const root = all.find((span) => span.name === 'voice-agent call')!;
    const enqueue = all.find((span) => span.name === 'aftercall.enqueue')!;
    expect(root).toBeDefined();
    expect(enqueue.parentSpanId).toBe(root.spanId);
    const attempts = all
      .filter((span) => span.name === 'aftercall.deliver update_crm')
      .sort((a, b) => Number(attribute(a, 'aftercall.attempt')) - Number(attribute(b, 'aftercall.attempt')));
    expect(attempts).toHaveLength(2);
    for (const attempt of attempts) {
      expect(attempt.parentSpanId).toBe(enqueue.spanId);
      expect(attempt.service).toBe('aftercall-worker');
      expect(attempt.kind).toBe(5); // consumer
    }
    // The first attempt failed: error status and the exception recorded; the retry links to it.
    expect(attempts[0]!.status?.code).toBe(2);
    expect(attempts[0]!.events?.map((event) => event.name)).toContain('exception');
    expect(attribute(attempts[0]!, 'aftercall.result')).toBe('retrying');
    expect(attribute(attempts[1]!, 'aftercall.result')).toBe('completed');
    expect(attempts[1]!.links).toEqual([{ traceId, spanId: attempts[0]!.spanId }]);
    // Each provider request is a client span under its attempt, with HTTP client semantic conventions.
    const requests = all.filter((span) => span.name === 'POST');
    for (const [index, status] of [503, 200].entries()) {
      const request = requests.find((span) => span.parentSpanId === attempts[index]!.spanId)!;
      expect(request.kind).toBe(3); // client
      expect(attribute(request, 'http.request.method')).toBe('POST');
      expect(attribute(request, 'http.response.status_code')).toBe(status);
      expect(attribute(request, 'url.full')).toBe(`${receiver.url}/crm`);
      expect(attribute(request, 'server.address')).toBe('127.0.0.1');
      if (status === 503) expect(attribute(request, 'error.type')).toBe('503');
    }
    // The webhook requests carried traceparent: this trace, the request span as parent.
    const receipts = receiver.receipts.filter((r) => r.body.conversationId === conversationId);
    expect(receipts.map((r) => r.headers.traceparent)).toEqual(
      [503, 200].map((status) => {
        const request = requests.find((span) => attribute(span, 'http.response.status_code') === status)!;
        return `00-${traceId}-${request.spanId}-01`;
      }),
    );
    // The attempt history keeps each attempt's span id.
    const { conversationStatus } = await import('../src/ops/status.js');
    const [crm] = await conversationStatus(client, prefix, conversationId);
    expect(crm!.history.map((entry) => entry.spanId)).toEqual(attempts.map((attempt) => attempt.spanId));
  });
  it('shows the Resend and Twilio requests as client spans of their attempts, across a retry', async () => {
    const producer = createProducer({ redis: TEST_REDIS, prefix });
    const conversationId = 'traced-providers';
    const now = Date.now();
    let traceId = '';
    try {
      await trace.getTracer('voice-agent').startActiveSpan('voice-agent call', async (span) => {
        traceId = span.spanContext().traceId;
        // A booking 10 hours ahead: a confirmation e-mail (Resend) and a reminder due now (Twilio SMS).
        const outcome = bookedOutcome(conversationId, now, { surveyOptIn: false });
        await producer.conversationEnded({
          ...outcome,
          booking: { ...outcome.booking!, startsAt: new Date(now + 10 * 3_600_000).toISOString() },
        });
        span.end();
      });
    } finally {
      await producer.close();
    }
    const inTrace = () => spans.filter((span) => span.traceId === traceId);
    const attemptsOf = (type: string) =>
      inTrace()
        .filter((span) => span.name === `aftercall.deliver ${type}`)
        .sort((a, b) => Number(attribute(a, 'aftercall.attempt')) - Number(attribute(b, 'aftercall.attempt')));
    const completed = (type: string) => attemptsOf(type).some((s) => attribute(s, 'aftercall.result') === 'completed');
    await waitUntil(
      async () => completed('send_email') && completed('schedule_reminder'),
      (done) => done,
      'the e-mail and the SMS delivered at their retry, and exported',
      30_000,
    );
    const all = inTrace();
    const clientSpansOf = (attempt: ExportedSpan) =>
      all
        .filter((span) => span.parentSpanId === attempt.spanId && span.kind === 3)
        .sort((a, b) => String(a.name).localeCompare(String(b.name)));
    /** The request that carried a span's traceparent, as the proxy saw it. */
    const exchangeOf = (span: ExportedSpan) =>
      exchanges.filter((exchange) => exchange.headers.traceparent === `00-${traceId}-${span.spanId}-01`);
    const root = all.find((span) => span.name === 'voice-agent call')!;
    const enqueue = all.find((span) => span.name === 'aftercall.enqueue')!;
    expect(enqueue.parentSpanId).toBe(root.spanId);
    const port = Number(new URL(proxyUrl).port);

    // E-mail: attempt 1 answered 503, attempt 2 delivered; one POST client span under each.
    const emails = attemptsOf('send_email');
    expect(emails).toHaveLength(2);
    expect(emails[1]!.links).toEqual([{ traceId, spanId: emails[0]!.spanId }]);
    for (const [index, status] of [503, 200].entries()) {
      expect(emails[index]!.parentSpanId).toBe(enqueue.spanId);
      const requests = clientSpansOf(emails[index]!);
      expect(requests.map((span) => span.name)).toEqual(['POST']);
      const request = requests[0]!;
      expect(attribute(request, 'http.request.method')).toBe('POST');
      expect(attribute(request, 'http.response.status_code')).toBe(status);
      expect(attribute(request, 'url.full')).toBe(`${proxyUrl}/emails`);
      expect(attribute(request, 'server.address')).toBe('127.0.0.1');
      expect(attribute(request, 'server.port')).toBe(port);
      expect(attribute(request, 'error.type')).toBe(status === 503 ? '503' : undefined);
      expect(request.status?.code ?? 0).toBe(status === 503 ? 2 : 0);
      // Resend got this span's traceparent and answered the status the span records.
      expect(exchangeOf(request).map(({ method, url, status }) => ({ method, url, status }))).toEqual([
        { method: 'POST', url: '/emails', status },
      ]);
    }

    // SMS: attempt 1 answered 500; attempt 2 first looks for the message (the ledger says
    // attempted, a 500 may have sent it), then sends it. Every request a client span.
    const sms = attemptsOf('schedule_reminder');
    expect(sms).toHaveLength(2);
    expect(sms[1]!.links).toEqual([{ traceId, spanId: sms[0]!.spanId }]);
    const smsUrl = `${proxyUrl}${TWILIO_MESSAGES}`;
    expect(clientSpansOf(sms[0]!).map((span) => [span.name, attribute(span, 'http.response.status_code')])).toEqual([
      ['POST', 500],
    ]);
    expect(clientSpansOf(sms[1]!).map((span) => [span.name, attribute(span, 'http.response.status_code')])).toEqual([
      ['GET', 200],
      ['POST', 201],
    ]);
    for (const request of [...clientSpansOf(sms[0]!), ...clientSpansOf(sms[1]!)]) {
      const status = attribute(request, 'http.response.status_code');
      expect(attribute(request, 'http.request.method')).toBe(request.name);
      // No query string (the look-up's carries the phone number) and no credentials.
      expect(attribute(request, 'url.full')).toBe(smsUrl);
      expect(attribute(request, 'server.port')).toBe(port);
      expect(attribute(request, 'error.type')).toBe(status === 500 ? '500' : undefined);
      expect(request.status?.code ?? 0).toBe(status === 500 ? 2 : 0);
      const [exchange] = exchangeOf(request);
      expect(exchange).toMatchObject({ method: request.name, status });
      expect(exchange!.headers.authorization).toMatch(/^Basic /);
    }
    const [lookUp] = exchangeOf(clientSpansOf(sms[1]!)[0]!);
    expect(lookUp!.url).toContain('To=%2B14155550100');
    // The failed attempts are recorded as errors on the attempt spans too.
    expect(emails[0]!.status?.code).toBe(2);
    expect(sms[0]!.status?.code).toBe(2);
  });
  it('records a provider request that got no answer: error status, error.type naming the failure', async () => {
    // Resend: a server that takes the request and never answers, so the request times out.
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    // Twilio: a port nothing listens on, so the connection is refused.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedUrl = `http://127.0.0.1:${(closed.address() as { port: number }).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const resend = createResendDelivery({
      apiKey: 're_test_key',
      baseUrl: silentUrl,
      from: 'Acme <bookings@acme.example>',
      timeoutMs: 200,
    });
    const twilio = createTwilioDelivery({
      accountSid: TWILIO_SID,
      authToken: 'test-token',
      from: '+14155550000',
      apiBase: closedUrl,
      redis: client,
      prefix,
    });
    const request = {
      type: 'follow_up_survey',
      jobId: 'unanswered%3Afollow_up_survey',
      idempotencyKey: 'unanswered:follow_up_survey',
      conversationId: 'unanswered',
      attempt: 1,
      createdAt: Date.now(),
      expiresAt: Date.now() + 3_600_000,
      payload: {},
    };
    const signal = new AbortController().signal;
    let traceId = '';
    try {
      await trace.getTracer('test').startActiveSpan('attempt', async (span) => {
        traceId = span.spanContext().traceId;
        await expect(
          resend.sendEmail({ to: 'ada@example.com', subject: 'Hi', html: '<p>Hi</p>', text: 'Hi' }, request, signal),
        ).rejects.toThrow(/no status/);
        await expect(twilio.sendSms({ to: '+14155550100', body: 'Hi' }, request, signal)).rejects.toThrow(
          /twilio request failed/,
        );
        span.end();
      });
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
    const requests = await waitUntil(
      async () => spans.filter((span) => span.traceId === traceId && span.kind === 3),
      (found) => found.length === 2,
      'both client spans exported',
    );
    const summary = requests
      .map((span) => ({
        name: span.name,
        url: attribute(span, 'url.full'),
        status: attribute(span, 'http.response.status_code'),
        errorType: attribute(span, 'error.type'),
        code: span.status?.code,
      }))
      .sort((a, b) => String(a.url).localeCompare(String(b.url)));
    expect(summary).toEqual(
      [
        { name: 'POST', url: `${silentUrl}/emails`, status: undefined, errorType: 'TimeoutError', code: 2 },
        { name: 'POST', url: `${closedUrl}${TWILIO_MESSAGES}`, status: undefined, errorType: 'ECONNREFUSED', code: 2 },
      ].sort((a, b) => a.url.localeCompare(b.url)),
    );
  });
});
