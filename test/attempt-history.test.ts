/**
 * Attempt history: every attempt of a task, kept with its job (the last 20), in the
 * dead-letter entry, and shown by `aftercall status` (table and --json `history`) and by
 * `aftercall dlq list` / `dlq show`.
 *
 * A real worker delivers to a local webhook receiver scripted per conversation (503, 500,
 * then 200; 422; 429 with Retry-After then 200); a job handler with a port that quotes the
 * customer's e-mail address and phone number in its error shows the history is scrubbed.
 */
import { Writable } from 'node:stream';
import { Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import type { DeliveryPort } from '../src/contract/delivery-port.js';
import { RetryableDeliveryError } from '../src/delivery/errors.js';
import { conversationStatus } from '../src/ops/status.js';
import { createProducer } from '../src/producer/producer.js';
import { HISTORY_LIMIT, historyOf, storedAttempt } from '../src/redis/attempt-history.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { queueName, typeKeys } from '../src/redis/keys.js';
import { recordAttempt } from '../src/redis/scripts.js';
import { resolveTaskConfigs, taskDefinition } from '../src/tasks/catalog.js';
import { createJobHandler } from '../src/worker/job-handler.js';
import { createLogger } from '../src/worker/logger.js';
import { DEFAULT_RETRY_POLICY } from '../src/worker/retry-policy.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, TEST_REDIS, testConfig, testEnv, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { scriptAnswers, startReceiver, type Answer, type WebhookReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('attempt-history');
const client = redis();
const dlq = new DeadLetterQueue(client, prefix);
const producer = createProducer({ redis: TEST_REDIS, prefix });
let scripts: Map<string, Answer[]>;
let receiver: WebhookReceiver;
let worker: FleetWorker;

beforeAll(async () => {
  receiver = await startReceiver();
  scripts = scriptAnswers(receiver);
  worker = await startWorker({
    config: testConfig(prefix, receiver.url, { CIRCUIT_MIN_CALLS: '100000' }),
    concurrency: 4,
    sweeper: false,
  });
  await worker.ready;
});

afterAll(async () => {
  await worker.close();
  await producer.close();
  await receiver.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const crmStatus = async (conversationId: string) =>
  (await conversationStatus(client, prefix, conversationId)).find((entry) => entry.type === 'update_crm');
const settled = (conversationId: string) =>
  waitUntil(
    () => crmStatus(conversationId),
    (status) => status?.state === 'completed' || status?.state === 'dead_lettered',
    `update_crm of ${conversationId} to finish`,
  );

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

async function cli(args: string[]) {
  const stdout = sink();
  const stderr = sink();
  const env = testEnv(prefix, receiver.url);
  const code = await main(args, { stdin: process.stdin, stdout: stdout.stream, stderr: stderr.stream, env });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe('attempt history', () => {
  it('records every attempt of a retried task (time, duration, destination, status, error) and status shows it', async () => {
    const conversationId = 'history-retried';
    scripts.set(conversationId, [{ status: 503 }, { status: 500 }, { status: 200 }]);
    const before = Date.now();
    await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    const status = await settled(conversationId);
    expect(status).toMatchObject({ state: 'completed', attempts: 3 });
    expect(
      status!.history.map(({ attempt, result, status: http, error, destination }) => ({
        attempt,
        result,
        http,
        error,
        destination,
      })),
    ).toEqual([
      {
        attempt: 1,
        result: 'retryable_error',
        http: 503,
        error: 'webhook answered HTTP 503',
        destination: 'webhook:update_crm',
      },
      {
        attempt: 2,
        result: 'retryable_error',
        http: 500,
        error: 'webhook answered HTTP 500',
        destination: 'webhook:update_crm',
      },
      { attempt: 3, result: 'success', http: 200, error: null, destination: 'webhook:update_crm' },
    ]);
    const starts = status!.history.map((entry) => Date.parse(entry.startedAt));
    expect(starts[0]).toBeGreaterThanOrEqual(before - 5);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    for (const entry of status!.history) expect(entry.durationMs).toBeGreaterThanOrEqual(0);

    const json = await cli(['status', conversationId, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const crm = (JSON.parse(json.stdout) as { type: string; history: unknown[] }[]).find(
      (t) => t.type === 'update_crm',
    );
    expect(crm!.history).toEqual(status!.history);

    const text = await cli(['status', conversationId]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('update_crm attempts:');
    expect(text.stdout).toMatch(
      /1\s+\S+Z?\S*\s+\d+ ms\s+retryable_error\s+webhook:update_crm\s+503\s+webhook answered HTTP 503/,
    );
    expect(text.stdout).toMatch(/3\s+\S+\s+\d+ ms\s+success\s+webhook:update_crm\s+200/);
  });

  it('keeps the history in the dead-letter entry: list and detail show it', async () => {
    const conversationId = 'history-exhausted';
    scripts.set(conversationId, [{ status: 502 }, { status: 502 }, { status: 502 }, { status: 502 }, { status: 422 }]);
    const result = await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await settled(conversationId);
    const jobId = result.tasks.find((task) => task.type === 'update_crm')!.jobId;
    const entry = await dlq.get('update_crm', jobId);
    expect(entry).toMatchObject({ reason: 'terminal', attempts: 5 });
    expect(entry!.history.map((h) => `${h.attempt}:${h.result}:${h.status}`)).toEqual([
      '1:retryable_error:502',
      '2:retryable_error:502',
      '3:retryable_error:502',
      '4:retryable_error:502',
      '5:terminal_error:422',
    ]);
    const [listed] = (await dlq.list({ types: ['update_crm'] })).filter((e) => e.conversationId === conversationId);
    expect(listed!.history).toEqual(entry!.history);

    const list = await cli(['dlq', 'list', '--type', 'update_crm']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('retryable_error 502 ×4, terminal_error 422');
    const show = await cli(['dlq', 'show', '--type', 'update_crm', '--job', jobId]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/conversationId\s+history-exhausted/);
    expect(show.stdout).toMatch(
      /5\s+\S+\s+\d+ ms\s+terminal_error\s+webhook:update_crm\s+422\s+webhook answered HTTP 422/,
    );
    const showJson = await cli(['dlq', 'show', '--type', 'update_crm', '--job', jobId, '--json']);
    expect(JSON.parse(showJson.stdout).history).toEqual(entry!.history);
    const missing = await cli(['dlq', 'show', '--type', 'update_crm', '--job', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('update_crm job nope is not in the dead-letter queue');
    const usage = await cli(['dlq', 'show', '--job', jobId]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--type is required');
  });

  it('records a 429 wait as rate_limited (no attempt used) before the delivery that succeeded', async () => {
    const conversationId = 'history-429';
    scripts.set(conversationId, [{ status: 429, headers: { 'retry-after': '0' } }, { status: 200 }]);
    await producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    const status = await settled(conversationId);
    expect(status!.state).toBe('completed');
    expect(status!.history.map((h) => `${h.attempt}:${h.result}:${h.status}`)).toEqual([
      '1:rate_limited:429',
      '1:success:200',
    ]);
  });
});

describe('attempt history, written by the handler and the script', () => {
  const keys = typeKeys(prefix, 'update_crm');

  it('scrubs e-mail addresses and phone numbers out of the recorded errors', async () => {
    const port: DeliveryPort = {
      provider: 'webhook',
      async deliver() {
        throw new RetryableDeliveryError('mailbox of grace@example.com full; call +1 555 010 0199', {
          provider: 'webhook',
          status: 503,
        });
      },
    };
    const scrubPrefix = `${prefix}-scrub`;
    const scrubKeys = typeKeys(scrubPrefix, 'update_crm');
    const scrubProducer = createProducer({ redis: TEST_REDIS, prefix: scrubPrefix });
    const own = createJobHandler({
      definition: taskDefinition('update_crm'),
      config: resolveTaskConfigs().get('update_crm')!,
      port,
      keys: scrubKeys,
      client,
      retryPolicy: DEFAULT_RETRY_POLICY,
      deliveryTimeoutMs: 1_000,
      clock: Date.now,
      logger: createLogger({ level: 'silent' }),
    });
    const result = await scrubProducer.conversationEnded(
      resolvedOutcome('history-scrub', Date.now(), { ticket: undefined }),
    );
    const jobId = result.tasks[0]!.jobId;
    const bullWorker = new Worker(queueName('update_crm'), own, {
      prefix: scrubPrefix,
      connection: client.duplicate(),
      settings: { backoffStrategy: () => 20 },
    });
    try {
      const hash = await waitUntil(
        () => client.hgetall(scrubKeys.job(jobId)),
        (h) => historyOf(h).length >= 2,
        'two recorded attempts',
      );
      const stored = hash.attemptHistory!;
      expect(stored).not.toContain('grace@example.com');
      expect(stored).not.toContain('555');
      expect(historyOf(hash)[0]!.error).toBe('mailbox of [e-mail] full; call [phone]');
    } finally {
      await bullWorker.close();
      await scrubProducer.close();
      await removePrefix(client, scrubPrefix);
    }
  });

  it(`keeps the last ${HISTORY_LIMIT} attempts, oldest dropped first`, async () => {
    const jobId = 'bounded';
    await client.hset(keys.job(jobId), 'data', '{}');
    for (let n = 1; n <= HISTORY_LIMIT + 5; n += 1) {
      const entry = storedAttempt({
        attempt: n,
        startedAt: 1_764_000_000_000 + n,
        durationMs: n,
        result: 'retryable_error',
        status: 503,
        error: `e${n}`,
      });
      expect(await recordAttempt(client, keys, { jobId, entry, limit: HISTORY_LIMIT })).toBe(0);
    }
    const history = historyOf(await client.hgetall(keys.job(jobId)));
    expect(history.map((h) => h.attempt)).toEqual(Array.from({ length: HISTORY_LIMIT }, (_, i) => i + 6));
    expect(history[0]).toEqual({
      attempt: 6,
      startedAt: new Date(1_764_000_000_006).toISOString(),
      durationMs: 6,
      result: 'retryable_error',
      destination: null,
      status: 503,
      error: 'e6',
    });
    expect(
      await recordAttempt(client, keys, {
        jobId: 'gone',
        entry: storedAttempt({ attempt: 1, startedAt: 1, durationMs: 0, result: 'success' }),
        limit: 20,
      }),
    ).toBe(-1);
    expect(await client.exists(keys.job('gone'))).toBe(0);
  });
});
