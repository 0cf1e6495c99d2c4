/**
 * /metrics against what happened: tasks go through success, retry, terminal failure,
 * exhaustion and expiry by the sweeper; then every metric is checked against it. The
 * creation rate is read from a worker, never from the producer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { freePort } from './helpers/free-port.js';
import { parsePrometheusText, sampleValue, type Sample } from './helpers/prometheus-text.js';
import { redis, removePrefix, TEST_REDIS, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { scriptAnswers, startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('metrics');
const client = redis();
let receiver: WebhookReceiver;
let worker: FleetWorker;

const outcome = (conversationId: string, extra: Record<string, unknown> = {}) => ({
  conversationId,
  endedAt: new Date(Date.now() - 1_000).toISOString(),
  outcome: 'no_action',
  customer: { id: 'c' },
  ...extra,
});

beforeAll(async () => {
  receiver = await startReceiver();
  const answers: Record<string, number[]> = { 'm-retry': [503, 200], 'm-terminal': [422], 'm-exhausted': [503, 503] };
  const scripts = scriptAnswers(receiver);
  for (const [conversationId, statuses] of Object.entries(answers))
    scripts.set(
      conversationId,
      statuses.map((status) => ({ status })),
    );
  const config = testConfig(prefix, receiver.url, { SWEEP_INTERVAL: '300ms' });
  worker = await startWorker({ config, concurrency: 4, metricsPort: await freePort() });
  await worker.ready;
});

afterAll(async () => {
  await worker.close();
  await receiver.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

async function scrape(): Promise<Sample[]> {
  const response = await fetch(`${worker.metricsUrl}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

describe('worker metrics', () => {
  it('serve /healthz and /readyz', async () => {
    expect((await fetch(`${worker.metricsUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${worker.metricsUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${worker.metricsUrl}/nothing`)).status).toBe(404);
  });

  it('count what happened: success, retry, terminal, exhausted, expired by the sweeper', async () => {
    const producer = createProducer({
      redis: TEST_REDIS,
      prefix,
      tasks: { update_crm: { attempts: 2 }, follow_up_survey: { settings: { delay: 3_600_000, expiresAfter: 1_500 } } },
    });
    for (const id of ['m-ok', 'm-retry', 'm-terminal', 'm-exhausted']) await producer.conversationEnded(outcome(id));
    await producer.conversationEnded(outcome('m-survey', { outcome: 'resolved', surveyOptIn: true }));
    await producer.close();

    const settled = await waitUntil(
      scrape,
      (samples) =>
        sampleValue(samples, 'aftercall_tasks_completed_total', { type: 'update_crm' }) === 3 &&
        sampleValue(samples, 'aftercall_tasks_dead_lettered_total', { type: 'update_crm', reason: 'exhausted' }) ===
          1 &&
        sampleValue(samples, 'aftercall_sweeper_expired_total', { type: 'follow_up_survey' }) === 1 &&
        sampleValue(samples, 'aftercall_queue_jobs', { type: 'update_crm', state: 'waiting' }) === 0 &&
        // fleet-wide values are read from Redis and reused for 5 s
        sampleValue(samples, 'aftercall_dead_letter_jobs', { type: 'update_crm', reason: 'exhausted' }) === 1 &&
        sampleValue(samples, 'aftercall_dead_letter_jobs', { type: 'follow_up_survey', reason: 'expired' }) === 1,
      'the workload to settle in the metrics',
    );
    const v = (name: string, labels: Record<string, string> = {}) => sampleValue(settled, name, labels);

    // the creation rate, from Redis via the worker
    expect(v('aftercall_tasks_created_total', { type: 'update_crm' })).toBe(5);
    expect(v('aftercall_tasks_created_total', { type: 'follow_up_survey' })).toBe(1);
    expect(v('aftercall_tasks_created_total', { type: 'send_email' })).toBe(0);
    // attempts: m-ok, m-retry (2nd), m-survey's CRM succeed; m-retry (1st) and m-exhausted (x2) retryable; m-terminal terminal
    expect(v('aftercall_task_attempts_total', { type: 'update_crm', result: 'success' })).toBe(3);
    expect(v('aftercall_task_attempts_total', { type: 'update_crm', result: 'retryable_error' })).toBe(3);
    expect(v('aftercall_task_attempts_total', { type: 'update_crm', result: 'terminal_error' })).toBe(1);
    expect(v('aftercall_task_retries_total', { type: 'update_crm' })).toBe(2);
    expect(v('aftercall_tasks_completed_total', { type: 'update_crm' })).toBe(3);
    expect(v('aftercall_tasks_dead_lettered_total', { type: 'update_crm', reason: 'terminal' })).toBe(1);
    expect(v('aftercall_tasks_dead_lettered_total', { type: 'update_crm', reason: 'exhausted' })).toBe(1);
    expect(v('aftercall_tasks_dead_lettered_total', { type: 'follow_up_survey', reason: 'expired' })).toBe(1);
    // histograms: one duration per attempt, one latency per completion
    expect(v('aftercall_task_duration_seconds_count', { type: 'update_crm' })).toBe(7);
    expect(v('aftercall_task_latency_seconds_count', { type: 'update_crm' })).toBe(3);
    // fleet-wide state from Redis
    expect(v('aftercall_dead_letter_jobs', { type: 'update_crm', reason: 'terminal' })).toBe(1);
    expect(v('aftercall_dead_letter_jobs', { type: 'update_crm', reason: 'exhausted' })).toBe(1);
    expect(v('aftercall_dead_letter_jobs', { type: 'update_crm', reason: 'invalid' })).toBe(0);
    expect(v('aftercall_dead_letter_jobs', { type: 'follow_up_survey', reason: 'expired' })).toBe(1);
    for (const state of ['waiting', 'delayed', 'active', 'retrying'])
      expect(v('aftercall_queue_jobs', { type: 'update_crm', state })).toBe(0);
    expect(v('aftercall_queue_workers', { type: 'update_crm' })).toBe(1);
    expect(v('aftercall_worker_up', { type: 'update_crm' })).toBe(1);
    // the sweeper and the provider
    expect(v('aftercall_sweeper_runs_total')).toBeGreaterThanOrEqual(1);
    expect(v('aftercall_sweeper_duration_seconds_count')).toBe(v('aftercall_sweeper_runs_total'));
    expect(v('aftercall_provider_requests_total', { provider: 'webhook', status: '200' })).toBe(3);
    expect(v('aftercall_provider_requests_total', { provider: 'webhook', status: '503' })).toBe(3);
    expect(v('aftercall_provider_requests_total', { provider: 'webhook', status: '422' })).toBe(1);
    expect(v('aftercall_provider_request_duration_seconds_count', { provider: 'webhook' })).toBe(7);
    // Node.js process metrics
    expect(v('process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('show jobs waiting for a retry as retrying', async () => {
    receiver.answer = (receipt) =>
      receipt.body.conversationId === 'm-slow-retry'
        ? { status: 503, headers: { 'retry-after': '30' } }
        : { status: 200 };
    const producer = createProducer({ redis: TEST_REDIS, prefix });
    await producer.conversationEnded(outcome('m-slow-retry'));
    await producer.close();
    const samples = await waitUntil(
      scrape,
      (s) => sampleValue(s, 'aftercall_queue_jobs', { type: 'update_crm', state: 'retrying' }) === 1,
      'a retrying job',
      15_000,
    );
    expect(sampleValue(samples, 'aftercall_queue_jobs', { type: 'update_crm', state: 'delayed' })).toBe(0);
  });
});
