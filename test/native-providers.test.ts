/**
 * The native providers end to end: real worker, real `resend` and `twilio` SDKs, the
 * provider sandbox standing in for Resend and Twilio.
 */
import { spawn } from 'node:child_process';
import { Job, Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDestinationStore } from '../src/redis/destination-store.js';
import type { JobOutcomeEvent } from '../src/worker/job-handler.js';
import { burstFaults } from '../dev/demo/demo-plan.js';
import { createProducer } from '../src/producer/producer.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { queueName, typeKeys } from '../src/redis/keys.js';
import { startSandbox, type Sandbox } from '../dev/sandbox/sandbox.js';
import { conversationStatus } from '../src/ops/status.js';
import { ConfigError } from '../src/contract/validation-error.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { BIN } from './helpers/child-worker.js';
import { redis, REDIS_URL, removePrefix, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const prefix = uniquePrefix('native');
const client = redis();
let sandbox: Sandbox;
let worker: FleetWorker;
const events: (JobOutcomeEvent & { at: number })[] = [];
const producer = createProducer({ redisUrl: REDIS_URL, prefix });
const keys = typeKeys(prefix, 'send_email');
const emailQueue = new Queue(queueName('send_email'), { connection: client, prefix });
const HOUR = 3_600_000;
const TWILIO_SID = `AC${'a'.repeat(32)}`;

const providerEnv = (s: Sandbox) => ({
  WEBHOOK_SECRET: s.webhookSecret,
  RESEND_API_KEY: 're_test_key',
  RESEND_BASE_URL: s.resendBaseUrl,
  EMAIL_FROM: 'Acme <bookings@acme.example>',
  TWILIO_ACCOUNT_SID: TWILIO_SID,
  TWILIO_AUTH_TOKEN: 'test-token',
  TWILIO_FROM: '+14155550000',
  TWILIO_API_BASE: s.twilioApiBase,
  WEBHOOK_TIMEOUT: '500ms',
});

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, seed: 7 });
  const config = testConfig(prefix, `${sandbox.url}/webhooks`, providerEnv(sandbox));
  worker = await startWorker({
    config,
    concurrency: 4,
    sweeper: false,
    onOutcome: (event) => events.push({ ...event, at: Date.now() }),
  });
  await worker.ready;
});

afterAll(async () => {
  await worker.close();
  await emailQueue.close();
  await producer.close();
  await sandbox.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const booked = (conversationId: string, customer: Record<string, string>, startsInMs = 72 * HOUR) => ({
  conversationId,
  endedAt: new Date(Date.now() - 1_000).toISOString(),
  outcome: 'booked',
  customer: { id: 'cus', ...customer },
  booking: {
    id: `bk-${conversationId}`,
    startsAt: new Date(Date.now() + startsInMs).toISOString(),
    address: '12 Harbour St',
    service: 'Boiler <b>service</b>',
  },
});
const statusOf = async (conversationId: string, type: string) =>
  (await conversationStatus(client, prefix, conversationId)).find((entry) => entry.type === type);
const settled = (conversationId: string, type: string) =>
  waitUntil(
    () => statusOf(conversationId, type),
    (status) => status?.state === 'completed' || status?.state === 'dead_lettered',
    `${type} of ${conversationId}`,
  );

describe('native providers through the sandbox', () => {
  it('sends the confirmation e-mail through Resend with the idempotency key, and escapes customer text', async () => {
    const result = await producer.conversationEnded(
      booked('n-email', { name: 'Ada <script>alert(1)</script>', email: 'ada@example.com' }),
    );
    await settled('n-email', 'send_email');
    const [email] = sandbox.deliveries({ provider: 'resend' }).filter((delivery) => delivery.to === 'ada@example.com');
    const task = result.tasks.find((entry) => entry.type === 'send_email')!;
    expect(email).toMatchObject({
      idempotencyKey: task.idempotencyKey,
      expiresAt: task.expiresAt,
      type: 'send_email',
      subject: 'Booking confirmed: Boiler <b>service</b>',
    });
    expect(email!.html).toContain('Ada &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(email!.html).toContain('Boiler &lt;b&gt;service&lt;/b&gt;');
    expect(email!.html).not.toContain('<script>');
    expect(email!.text).toContain('Hello Ada <script>alert(1)</script>,');
    // the CRM record goes to its webhook, not to Resend
    expect(
      sandbox.deliveries({ provider: 'webhook' }).some((delivery) => delivery.idempotencyKey === 'n-email:update_crm'),
    ).toBe(true);
  });

  it('delivers an e-mail once when a retry follows a timeout whose request did arrive', async () => {
    sandbox.setFaults({ hangRate: 1, hangMs: 5_000 });
    const watch = setInterval(() => {
      if (sandbox.deliveries({ provider: 'resend' }).some((delivery) => delivery.to === 'hang@example.com'))
        sandbox.setFaults({ hangRate: 0 });
    }, 5);
    try {
      await producer.conversationEnded({ ...booked('n-hang', { email: 'hang@example.com' }) });
      await settled('n-hang', 'send_email');
    } finally {
      clearInterval(watch);
      sandbox.setFaults({ hangRate: 0 });
    }
    expect(await statusOf('n-hang', 'send_email')).toMatchObject({ state: 'completed', attempts: 2 });
    expect(
      events.find(
        (event) => event.conversationId === 'n-hang' && event.type === 'send_email' && event.result === 'retrying',
      )?.error,
    ).toMatch(/no status/);
    expect(
      sandbox.deliveries({ provider: 'resend' }).filter((delivery) => delivery.to === 'hang@example.com'),
    ).toHaveLength(1);
  });

  it("honours a 429's Retry-After: Resend is held fleet-wide that long and the job waits, using no attempt (read from Redis)", async () => {
    // 30 s, so the job is still waiting when the test reads Redis; it is then promoted.
    sandbox.setFaults({ rateLimitRate: 1, retryAfterSeconds: 30 });
    let jobId: string;
    try {
      const result = await producer.conversationEnded(booked('n-429', { email: 'limited@example.com' }));
      jobId = result.tasks.find((task) => task.type === 'send_email')!.jobId;
      await waitUntil(
        () => client.zscore(keys.delayed, jobId),
        (score) => score !== null,
        'the rate-limited attempt to be scheduled again',
      );
    } finally {
      sandbox.setFaults({ rateLimitRate: 0 });
    }
    // The wait BullMQ was given: the Retry-After (plus under 250 ms of spread), not the 50 ms
    // backoff; and the 429 used no attempt.
    const delay = Number(await client.hget(keys.job(jobId), 'delay'));
    expect(delay).toBeGreaterThan(29_000);
    expect(delay).toBeLessThanOrEqual(30_250);
    expect(Number((await client.hget(keys.job(jobId), 'atm')) ?? 0)).toBe(0);
    // The whole fleet holds Resend until then.
    const store = createDestinationStore(client, prefix);
    const held = await store.read('resend', Date.now(), 30_000);
    expect(held.state).toBe('held');
    expect(held.until - Date.now()).toBeGreaterThan(25_000);
    // An operator ends the holds (the sandbox answered every destination 429, and the later
    // tests send to them too), and the job goes now.
    for (const destination of await store.list()) {
      await store.set(destination, { action: 'close', now: Date.now(), until: 0, reason: '' });
    }
    const job = await Job.fromId(emailQueue, jobId);
    await job!.promote();
    await settled('n-429', 'send_email');
    expect(await statusOf('n-429', 'send_email')).toMatchObject({ state: 'completed', attempts: 1 });
    expect(
      sandbox.deliveries({ provider: 'resend' }).filter((delivery) => delivery.to === 'limited@example.com'),
    ).toHaveLength(1);
  });

  it('dead-letters a refused recipient at once: reason terminal, one attempt (Resend and Twilio)', async () => {
    sandbox.setFaults({ terminalRecipients: ['refused@example.com', '+15550000001'] });
    try {
      await producer.conversationEnded(
        booked('n-refused', { email: 'refused@example.com', phone: '+15550000001' }, 10 * HOUR),
      );
      await settled('n-refused', 'send_email');
      await settled('n-refused', 'schedule_reminder');
      await settled('n-refused', 'update_crm');
    } finally {
      sandbox.setFaults({ terminalRecipients: [] });
    }
    const entries = (await new DeadLetterQueue(client, prefix).list()).filter(
      (entry) => entry.conversationId === 'n-refused',
    );
    // (the sandbox's webhook receiver refuses the same customer, so the CRM record goes too)
    expect(entries.map((entry) => [entry.type, entry.reason, entry.attempts]).sort()).toEqual([
      ['schedule_reminder', 'terminal', 1],
      ['send_email', 'terminal', 1],
      ['update_crm', 'terminal', 1],
    ]);
    expect(entries.find((entry) => entry.type === 'schedule_reminder')!.lastError).toMatch(/code 21211/);
  });

  it('sends a due reminder by SMS when the customer has a phone, and by e-mail when not', async () => {
    await producer.conversationEnded(
      booked('n-sms', { name: 'Grace', phone: '+14155550142', email: 'grace@example.com' }, 10 * HOUR),
    );
    await producer.conversationEnded(booked('n-mail', { email: 'alan@example.com' }, 10 * HOUR));
    await settled('n-sms', 'schedule_reminder');
    await settled('n-mail', 'schedule_reminder');
    const sms = sandbox.deliveries({ provider: 'twilio' }).find((delivery) => delivery.to === '+14155550142');
    expect(sms?.body).toMatch(/^Hi Grace, reminder: Boiler <b>service<\/b> on /);
    expect(sms?.idempotencyKey).toMatch(/^booking:bk-n-sms@.*:schedule_reminder$/);
    expect(
      sandbox
        .deliveries({ provider: 'resend' })
        .some((delivery) => delivery.to === 'alan@example.com' && delivery.type === 'schedule_reminder'),
    ).toBe(true);
  });

  it('keeps an SMS single when a task is run again: the ledger remembers the SID', async () => {
    const twilio = createTwilioDelivery({
      accountSid: TWILIO_SID,
      authToken: 'test-token',
      from: '+14155550000',
      apiBase: sandbox.twilioApiBase,
      redis: client,
      prefix,
    });
    const request = {
      type: 'follow_up_survey',
      jobId: 'n-ledger%3Afollow_up_survey',
      idempotencyKey: 'n-ledger:follow_up_survey',
      conversationId: 'n-ledger',
      attempt: 1,
      createdAt: Date.now(),
      expiresAt: Date.now() + HOUR,
      payload: {},
    };
    const signal = new AbortController().signal;
    const first = await twilio.sendSms({ to: '+14155550199', body: 'How did we do?' }, request, signal);
    const second = await twilio.sendSms(
      { to: '+14155550199', body: 'How did we do?' },
      { ...request, attempt: 2 },
      signal,
    );
    expect(second.messageId).toBe(first.messageId);
    expect(
      sandbox.deliveries({ provider: 'twilio' }).filter((delivery) => delivery.to === '+14155550199'),
    ).toHaveLength(1);
  });

  it('refuses to start when a chosen channel is not configured, naming the variable', async () => {
    const bare = testConfig(prefix, `${sandbox.url}/webhooks`, {
      CHANNEL_SEND_EMAIL: 'resend',
      TWILIO_ACCOUNT_SID: TWILIO_SID,
    });
    const error = await startWorker({ config: bare, sweeper: false }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    const paths = (error as ConfigError).issues.map((issue) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['RESEND_API_KEY', 'EMAIL_FROM', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM']));
  });
});

describe('aftercall demo', () => {
  const demo = (args: string[], env: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'demo', ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  it('runs the fleet end to end and accounts for every task', async () => {
    const { code, stdout, stderr } = await demo(
      ['--conversations', '40', '--burst-seconds', '1', '--late', '0.1', '--bad-recipients', '0.1'],
      { REDIS_URL },
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const created = Number(/enqueued (\d+) tasks from 40 conversations/.exec(stdout)?.[1]);
    expect(created).toBeGreaterThan(40);
    expect(stdout).toContain(`every one of the ${created} tasks is accounted for`);
    const rows = stdout
      .split('\n')
      .filter((line) =>
        /^(send_email|update_crm|schedule_reminder|update_ticket|route_callback|follow_up_survey)\s/.test(line),
      );
    expect(rows).toHaveLength(6);
    let total = 0;
    for (const row of rows) {
      const [, createdCount, completed, , expired, exhausted, terminal, invalid] = row.split(/\s+/).map(Number);
      expect(completed! + expired! + exhausted! + terminal! + invalid!).toBe(createdCount);
      total += createdCount!;
    }
    expect(total).toBe(created);
    expect(stdout).toMatch(/terminal/);
  }, 180_000);

  it('splits its fault rate into faults that add up to it, up to every request failing', async () => {
    for (const rate of [0, 0.3, 1]) {
      const faults = burstFaults(rate);
      expect(faults.rateLimitRate + faults.serverErrorRate + faults.hangRate).toBeCloseTo(rate, 12);
    }
    // --fault-rate 1 is within what --help promises, and the sandbox takes it
    const all = await startSandbox({ port: 0, faults: burstFaults(1) });
    await all.close();
  });

  it('says in one line how to start Redis when none answers', async () => {
    const { code, stderr } = await demo([], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/no Redis answers at redis:\/\/127\.0\.0\.1:1.*redis-server.*docker compose up -d redis/);
  });
});
