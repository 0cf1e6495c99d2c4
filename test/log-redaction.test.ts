/**
 * Logs never carry secrets or customer data: a workload with every kind of fault runs
 * through real worker processes at the most verbose level, and all their output is
 * searched for every secret and every piece of customer data that went in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrubText } from '../src/worker/logger.js';
import { createProducer } from '../src/producer/producer.js';
import { startSandbox, type Sandbox } from '../dev/sandbox/sandbox.js';
import { conversationStatus } from '../src/ops/status.js';
import { startChildWorker, type ChildWorker } from './helpers/child-worker.js';
import { redis, REDIS_URL, removePrefix, testEnv, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const prefix = uniquePrefix('redaction');
const client = redis();
let sandbox: Sandbox;
const workers: ChildWorker[] = [];
const HOUR = 3_600_000;
const secrets = { RESEND_API_KEY: 're_live_SECRETKEY_7f3a9c', TWILIO_AUTH_TOKEN: 'twilio-auth-SECRET-5d1e' };

const customers = Array.from({ length: 12 }, (_, index) => ({
  name: `Zelda${index} Quixote`,
  email: `zelda${index}.private@customer-mail.example`,
  phone: `+4470079${String(1000 + index)}`,
  address: `${index + 1} Secret Garden Lane`,
  summary: `Confidential summary number ${index}: the customer mentioned their account balance.`,
}));

beforeAll(async () => {
  sandbox = await startSandbox({
    port: 0,
    seed: 3,
    faults: {
      serverErrorRate: 0.2,
      rateLimitRate: 0.1,
      retryAfterSeconds: 1,
      hangRate: 0.05,
      hangMs: 1_500,
      terminalRecipients: [customers[0]!.email, customers[1]!.phone],
    },
  });
  const env = testEnv(prefix, `${sandbox.url}/webhooks`, {
    WEBHOOK_SECRET: sandbox.webhookSecret,
    RESEND_BASE_URL: sandbox.resendBaseUrl,
    EMAIL_FROM: 'Acme <bookings@acme.example>',
    TWILIO_ACCOUNT_SID: `AC${'b'.repeat(32)}`,
    TWILIO_FROM: '+14155550000',
    TWILIO_API_BASE: sandbox.twilioApiBase,
    WEBHOOK_TIMEOUT: '1s',
    ...secrets,
  });
  for (let index = 0; index < 2; index += 1) workers.push(startChildWorker({ ...env, LOG_LEVEL: 'trace' }));
  for (const worker of workers) await worker.waitForLog((line) => line.msg === 'worker started');
});

afterAll(async () => {
  for (const worker of workers) worker.kill('SIGTERM');
  await Promise.all(workers.map((worker) => worker.exited));
  await sandbox.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('log redaction', () => {
  it('keeps secrets and customer data out of every log line, faults included', async () => {
    const producer = createProducer({
      redisUrl: REDIS_URL,
      prefix,
      tasks: { follow_up_survey: { settings: { delay: 0 } } },
    });
    const ids: string[] = [];
    for (const [index, customer] of customers.entries()) {
      const conversationId = `redact-${index}`;
      ids.push(conversationId);
      await producer.conversationEnded({
        conversationId,
        endedAt: new Date(Date.now() - 1_000).toISOString(),
        outcome: index % 2 ? 'booked' : 'resolved',
        customer: { id: `cus-${index}`, name: customer.name, email: customer.email, phone: customer.phone },
        booking: {
          id: `bk-${index}`,
          startsAt: new Date(Date.now() + 10 * HOUR).toISOString(),
          address: customer.address,
        },
        ticket: { id: `T-${index}` },
        summary: customer.summary,
        surveyOptIn: true,
      });
    }
    await producer.close();
    await waitUntil(
      async () => (await Promise.all(ids.map((id) => conversationStatus(client, prefix, id)))).flat(),
      (entries) =>
        entries.length > 0 && entries.every((entry) => entry.state === 'completed' || entry.state === 'dead_lettered'),
      'every task to finish',
      60_000,
    );
    for (const worker of workers) worker.kill('SIGTERM');
    await Promise.all(workers.map((worker) => worker.exited));

    const output = workers.map((worker) => `${JSON.stringify(worker.logs)}\n${worker.stderr}`).join('\n');
    expect(
      workers.flatMap((worker) => worker.logs).filter((line) => line.msg === 'job completed').length,
    ).toBeGreaterThan(20);
    expect(workers.flatMap((worker) => worker.logs).some((line) => line.result === 'dead_lettered')).toBe(true);
    expect(workers.flatMap((worker) => worker.logs).some((line) => line.result === 'retrying')).toBe(true);
    const forbidden = [
      ...Object.values(secrets),
      sandbox.webhookSecret,
      sandbox.webhookSecret.slice('whsec_'.length),
      ...customers.flatMap((customer) => [
        customer.name,
        customer.email,
        customer.phone,
        customer.address,
        customer.summary,
      ]),
    ];
    const leaks = forbidden.filter((value) => output.includes(value));
    expect(leaks).toEqual([]);
  }, 90_000);

  it('scrubs e-mail addresses and phone numbers out of provider error texts', () => {
    expect(scrubText("The 'To' number +1 (555) 000-0001 is not a valid phone number.")).toBe(
      "The 'To' number [phone] is not a valid phone number.",
    );
    expect(scrubText('Invalid `to` field: ada.lovelace@example.com is blocked')).toBe(
      'Invalid `to` field: [e-mail] is blocked',
    );
    expect(scrubText('call 14155550100 now')).toBe('call [phone] now');
    expect(scrubText('webhook answered HTTP 503')).toBe('webhook answered HTTP 503');
    expect(scrubText('expired at pickup: expiresAt 2026-11-26T10:00:00.000Z passed 5m before')).toBe(
      'expired at pickup: expiresAt 2026-11-26T10:00:00.000Z passed 5m before',
    );
  });
});
