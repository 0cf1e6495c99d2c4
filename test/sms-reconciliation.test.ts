/**
 * The SMS ledger's reconciliation, deterministically. Twilio takes no idempotency key, so
 * before sending, the Twilio adapter marks the task's ledger entry `attempted:<time>`;
 * an attempt that finds such a mark (the previous one's answer never came: a timeout, a
 * lost connection, a killed worker) first lists the recipient's recent messages and takes
 * one with the same body, created since that attempt (less 30 s of clock skew), as sent.
 *
 * The real `twilio` SDK talks to the provider sandbox's Twilio fake; both the sandbox
 * (which dates the messages) and the adapter (which dates its attempts) run on injected
 * clocks, and the ledger is seeded in Redis as an earlier attempt would have left it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRequest } from '../src/contract/delivery-port.js';
import { RetryableDeliveryError, TerminalDeliveryError } from '../src/delivery/errors.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { typeKeys } from '../src/redis/keys.js';
import { startSandbox, type Sandbox } from '../dev/sandbox/sandbox.js';
import { redis, removePrefix, uniquePrefix } from './helpers/redis.js';

const prefix = uniquePrefix('sms-reconcile');
const client = redis();
const ACCOUNT_SID = `AC${'b'.repeat(32)}`;
const FROM = '+14155550000';
const T0 = Date.parse('2026-11-26T12:00:00Z');
const signal = new AbortController().signal;
let sandbox: Sandbox;
let sandboxNow = T0;
let adapterNow = T0;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, seed: 3, now: () => sandboxNow });
});

afterAll(async () => {
  await sandbox.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const twilio = (timeoutMs = 5_000) =>
  createTwilioDelivery({
    accountSid: ACCOUNT_SID,
    authToken: 'test-token',
    from: FROM,
    apiBase: sandbox.twilioApiBase,
    redis: client,
    prefix,
    now: () => adapterNow,
    timeoutMs,
  });

let sequence = 0;
function task(): DeliveryRequest {
  sequence += 1;
  return {
    type: 'schedule_reminder',
    jobId: `reconcile-${sequence}%3Aschedule_reminder`,
    idempotencyKey: `reconcile-${sequence}:schedule_reminder`,
    conversationId: `reconcile-${sequence}`,
    attempt: 2,
    createdAt: T0 - 60_000,
    expiresAt: T0 + 3_600_000,
    payload: {},
  };
}
const ledgerKey = (request: DeliveryRequest) => typeKeys(prefix, request.type).smsLedger(request.idempotencyKey);
const messagesTo = (to: string) => sandbox.deliveries({ provider: 'twilio' }).filter((sms) => sms.to === to);

/** A message Twilio already holds (sent by an attempt whose answer was lost), created at `at`. */
async function seedMessage(to: string, body: string, at: number): Promise<string> {
  sandboxNow = at;
  const response = await fetch(`${sandbox.twilioApiBase}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:test-token`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ To: to, From: FROM, Body: body }).toString(),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { sid: string }).sid;
}

describe('SMS ledger reconciliation against the sandbox', () => {
  it('takes a matching message created since the attempt as sent: its SID, and no new message', async () => {
    const to = '+14155550301';
    const sid = await seedMessage(to, 'Hi Ada, reminder: check-up tomorrow at 9:00', T0);
    const request = task();
    await client.set(ledgerKey(request), `attempted:${T0 - 2_000}`);
    adapterNow = T0 + 60_000;
    const receipt = await twilio().sendSms(
      { to, body: 'Hi Ada, reminder: check-up tomorrow at 9:00' },
      request,
      signal,
    );
    expect(receipt).toMatchObject({ provider: 'twilio', messageId: sid });
    expect(messagesTo(to).map((sms) => sms.id)).toEqual([sid]);
    // the ledger now remembers the SID: a further run sends nothing either
    expect(await client.get(ledgerKey(request))).toBe(sid);
  });

  it('allows 30 s of clock skew: a message dated up to 30 s before the attempt matches', async () => {
    const to = '+14155550302';
    const sid = await seedMessage(to, 'skewed clocks', T0);
    const request = task();
    await client.set(ledgerKey(request), `attempted:${T0 + 29_000}`);
    adapterNow = T0 + 40_000;
    const receipt = await twilio().sendSms({ to, body: 'skewed clocks' }, request, signal);
    expect(receipt.messageId).toBe(sid);
    expect(messagesTo(to)).toHaveLength(1);
  });

  it('sends a new message when the recipient has one with another body', async () => {
    const to = '+14155550303';
    const other = await seedMessage(to, 'Your survey: how did we do?', T0);
    const request = task();
    await client.set(ledgerKey(request), `attempted:${T0 - 2_000}`);
    adapterNow = T0 + 60_000;
    sandboxNow = T0 + 60_000;
    const receipt = await twilio().sendSms({ to, body: 'Hi Ada, reminder: check-up at 9:00' }, request, signal);
    expect(receipt.messageId).toMatch(/^SM[0-9a-f]{32}$/);
    expect(receipt.messageId).not.toBe(other);
    expect(messagesTo(to).map((sms) => [sms.id === receipt.messageId, sms.body])).toEqual([
      [false, 'Your survey: how did we do?'],
      [true, 'Hi Ada, reminder: check-up at 9:00'],
    ]);
  });

  it('sends a new message when the only same-body message is to another recipient', async () => {
    const to = '+14155550304';
    await seedMessage('+14155550399', 'same words, other phone', T0);
    const request = task();
    await client.set(ledgerKey(request), `attempted:${T0 - 2_000}`);
    adapterNow = T0 + 60_000;
    const receipt = await twilio().sendSms({ to, body: 'same words, other phone' }, request, signal);
    expect(messagesTo(to).map((sms) => sms.id)).toEqual([receipt.messageId]);
  });

  it('sends a new message when the same-body message is older than the attempt by more than the skew', async () => {
    const to = '+14155550305';
    const old = await seedMessage(to, 'Hi again', T0);
    const request = task();
    // the attempt began 31 s after that message: it was an earlier send, not this attempt's
    await client.set(ledgerKey(request), `attempted:${T0 + 31_000}`);
    adapterNow = T0 + 90_000;
    sandboxNow = T0 + 90_000;
    const receipt = await twilio().sendSms({ to, body: 'Hi again' }, request, signal);
    expect(receipt.messageId).not.toBe(old);
    expect(messagesTo(to)).toHaveLength(2);
  });

  it('clears the ledger on a 4xx (no message was created), and keeps the mark on a 5xx', async () => {
    const refused = '+14155550306';
    sandbox.setFaults({ terminalRecipients: [refused] });
    const request = task();
    adapterNow = T0;
    try {
      const error = await twilio()
        .sendSms({ to: refused, body: 'never' }, request, signal)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TerminalDeliveryError);
      expect((error as TerminalDeliveryError).details).toMatchObject({ status: 400, code: 21211 });
    } finally {
      sandbox.setFaults({ terminalRecipients: [] });
    }
    expect(await client.get(ledgerKey(request))).toBeNull();

    const to = '+14155550307';
    const retried = task();
    sandbox.setFaults({ serverErrorRate: 1 });
    try {
      const error = await twilio()
        .sendSms({ to, body: 'after a 5xx' }, retried, signal)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(RetryableDeliveryError);
      expect((error as RetryableDeliveryError).details.status).toBeGreaterThanOrEqual(500);
    } finally {
      sandbox.setFaults({ serverErrorRate: 0 });
    }
    // a 5xx may or may not have created a message: the next attempt looks first
    expect(await client.get(ledgerKey(retried))).toBe(`attempted:${T0}`);
    adapterNow = T0 + 10_000;
    sandboxNow = T0 + 10_000;
    const receipt = await twilio().sendSms({ to, body: 'after a 5xx' }, retried, signal);
    expect(messagesTo(to).map((sms) => sms.id)).toEqual([receipt.messageId]);
  });

  it('sends once when an attempt timed out after Twilio took the message', async () => {
    const to = '+14155550308';
    const request = task();
    adapterNow = T0 + 120_000;
    sandboxNow = T0 + 120_000;
    sandbox.setFaults({ hangRate: 1, hangMs: 10_000 });
    let error: unknown;
    try {
      error = await twilio(300)
        .sendSms({ to, body: 'timed out, but arrived' }, request, signal)
        .catch((caught: unknown) => caught);
    } finally {
      sandbox.setFaults({ hangRate: 0 });
    }
    expect(error).toBeInstanceOf(RetryableDeliveryError);
    expect((error as Error).message).toMatch(/timed out/);
    const [arrived] = messagesTo(to);
    expect(arrived).toBeDefined();
    expect(await client.get(ledgerKey(request))).toBe(`attempted:${T0 + 120_000}`);

    adapterNow = T0 + 125_000;
    const receipt = await twilio().sendSms({ to, body: 'timed out, but arrived' }, request, signal);
    expect(receipt.messageId).toBe(arrived!.id);
    expect(messagesTo(to)).toHaveLength(1);
  });
});
