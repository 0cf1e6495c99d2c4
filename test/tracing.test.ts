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
 */
import { createServer, type Server } from 'node:http';
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '../src/cli/tracing.js';
import { createProducer } from '../src/producer/producer.js';
import { startChildWorker, type ChildWorker } from './helpers/child-worker.js';
import { resolvedOutcome } from './helpers/outcomes.js';
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
  receiver.answer = (receipt) => {
    const seen = receiver.receipts.filter((r) => r.body.idempotencyKey === receipt.body.idempotencyKey).length;
    return { status: receipt.body.type === 'update_crm' && seen === 1 ? 503 : 200 };
  };
  worker = startChildWorker({ ...testEnv(prefix, receiver.url), ...otel, CIRCUIT_MIN_CALLS: '100000' }, [
    '--queues',
    'update_crm',
    '--no-sweeper',
  ]);
  await worker.waitForLog((line) => line.msg === 'worker started');
}, 60_000);

afterAll(async () => {
  worker?.kill('SIGTERM');
  await worker?.exited;
  await tracing?.shutdown();
  await receiver?.close();
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
});
