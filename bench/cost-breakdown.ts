/**
 * Where a worker's CPU goes, piece by piece: the per-job steps aftercall's worker adds to
 * BullMQ's own (its log line, the job data's validation, the metrics) and, for deliveries,
 * the HTTP client and the signing. Each is timed alone in this process with
 * process.cpuUsage over many calls after a warm-up: microseconds of CPU per call. They
 * explain the process-level benchmarks' gaps; they are not goals.
 */
import http from 'node:http';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { Webhook } from 'standardwebhooks';
import { createLogger, createWorkerMetrics, planOutcome, resolveTaskConfigs, taskDefinition } from '../src/index.js';
import { jobEnvelopeSchema, parseJobData } from '../src/tasks/job-data.js';
import type { JobOutcomeEvent } from '../src/worker/job-handler.js';
import { webhookSigner } from '../src/delivery/providers/webhook/webhook.js';
import { noActionOutcome, pool, TYPE, WEBHOOK_SECRET } from './harness.js';

/** CPU microseconds per call of `fn`, after a warm-up. */
async function cpuPerCall(fn: (i: number) => unknown, iterations: number): Promise<number> {
  for (let i = 0; i < Math.min(iterations, 2_000); i += 1) await fn(i);
  const before = process.cpuUsage();
  for (let i = 0; i < iterations; i += 1) await fn(i);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / iterations;
}

export interface HandlerCosts {
  logLine: number;
  logLineWithoutRedaction: number;
  jobValidation: number;
  jobValidationUncompiled: number;
  metrics: number;
}

/** The steps of aftercall's job handler that raw BullMQ does not have, in µs of CPU per job. */
export async function handlerCosts({ quick }: { quick: boolean }): Promise<HandlerCosts> {
  const iterations = quick ? 2_000 : 50_000;
  const now = Date.now();
  const data = planOutcome(noActionOutcome(1, now), resolveTaskConfigs(), now).tasks[0]!.data;
  const stored = JSON.parse(JSON.stringify(data)) as typeof data;
  const line = {
    conversationId: data.conversationId,
    jobId: 'bench-1%3Aupdate_crm',
    type: TYPE,
    attempt: 1,
    durationMs: 0,
    result: 'completed',
  };
  const devNull = () => pino.destination({ dest: '/dev/null', sync: true });
  // The production logger (level info, redaction of secret and customer fields), and the
  // same options without the redaction, each writing to /dev/null.
  const logger = createLogger({ level: 'info', destination: devNull() });
  const unredacted = pino(
    {
      name: 'aftercall',
      level: 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    devNull(),
  );
  const definition = taskDefinition(TYPE);
  // The metrics' Redis-reading gauges are never collected here: no client is needed.
  const metrics = createWorkerMetrics({ client: {} as Redis, prefix: 'bench-breakdown' });
  const event: JobOutcomeEvent = {
    type: TYPE,
    jobId: line.jobId,
    conversationId: data.conversationId,
    attempt: 1,
    durationMs: 1,
    result: 'completed',
    dueAt: now,
    provider: 'noop',
    calledProvider: true,
    attemptResult: 'success',
  };
  return {
    logLine: await cpuPerCall(() => logger.info(line, 'job completed'), iterations),
    logLineWithoutRedaction: await cpuPerCall(() => unredacted.info(line, 'job completed'), iterations),
    // what the worker runs (the compiled schemas), and the same checks through the schemas as written
    jobValidation: await cpuPerCall(() => parseJobData(definition, stored), iterations),
    jobValidationUncompiled: await cpuPerCall(() => {
      jobEnvelopeSchema.safeParse(stored);
      definition.payloadSchema.safeParse(stored.payload);
    }, iterations),
    metrics: await cpuPerCall(() => metrics.onJobOutcome(event), iterations),
  };
}

export interface DeliveryCosts {
  fetchMsPerRequest: number;
  fetchRequestsPerSecond: number;
  nodeHttpMsPerRequest: number;
  nodeHttpRequestsPerSecond: number;
  signStandardWebhooks: number;
  signNodeCrypto: number;
}

/**
 * The delivery path: CPU per request (ms) of Node's fetch and of node:http with a
 * keep-alive agent, and the requests per second each reaches alone (no queue, no Redis),
 * at `concurrency` requests in flight to the slow receiver at `url`; and the signing steps
 * of the webhook adapter (µs per call).
 */
export async function deliveryCosts({
  quick,
  url,
  concurrency,
}: {
  quick: boolean;
  url: string;
  concurrency: number;
}): Promise<DeliveryCosts> {
  const requests = quick ? 200 : 2_000;
  const now = Date.now();
  const data = planOutcome(noActionOutcome(1, now), resolveTaskConfigs(), now).tasks[0]!.data;
  const body = JSON.stringify({
    type: TYPE,
    idempotencyKey: data.idempotencyKey,
    conversationId: data.conversationId,
    jobId: 'bench-1%3Aupdate_crm',
    attempt: 1,
    payload: data.payload,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency * 2 });
  const viaFetch = async () => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await response.arrayBuffer();
  };
  const viaHttp = () =>
    new Promise<void>((resolve, reject) => {
      const request = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          response.resume();
          response.on('end', resolve);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  // CPU per request, and requests per second: the client alone, no queue, no Redis.
  const perRequest = async (fn: () => Promise<void>) => {
    await pool(Math.min(requests, 500), concurrency, fn);
    const before = process.cpuUsage();
    const started = performance.now();
    await pool(requests, concurrency, fn);
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(before);
    return { msPerRequest: (used.user + used.system) / 1000 / requests, requestsPerSecond: requests / seconds };
  };
  try {
    const signer = new Webhook(WEBHOOK_SECRET);
    const sign = webhookSigner(WEBHOOK_SECRET);
    const iterations = quick ? 2_000 : 20_000;
    const fetchLoop = await perRequest(viaFetch);
    const httpLoop = await perRequest(viaHttp);
    return {
      fetchMsPerRequest: fetchLoop.msPerRequest,
      fetchRequestsPerSecond: fetchLoop.requestsPerSecond,
      nodeHttpMsPerRequest: httpLoop.msPerRequest,
      nodeHttpRequestsPerSecond: httpLoop.requestsPerSecond,
      signStandardWebhooks: await cpuPerCall(() => signer.sign('bench-1%3Aupdate_crm', new Date(), body), iterations),
      signNodeCrypto: await cpuPerCall(() => sign('bench-1%3Aupdate_crm', new Date(), body), iterations),
    };
  } finally {
    agent.destroy();
  }
}
