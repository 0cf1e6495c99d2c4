/**
 * Conformance with the published APIs: every message kind goes through the real `resend`
 * and `twilio` SDKs, via aftercall's adapters, to a validating mock (Prism) of the
 * provider's own OpenAPI description in ../shared/provider-specs. A request the published
 * specification rejects comes back as 422 and fails the test.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConversationOutcome } from '../src/contract/conversation-outcome.js';
import type { DeliveryRequest } from '../src/contract/delivery-port.js';
import { TerminalDeliveryError } from '../src/delivery/errors.js';
import { createResendDelivery } from '../src/delivery/providers/resend/resend.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { jobIdFor } from '../src/tasks/job-id.js';
import { taskDefinition, type TaskType } from '../src/tasks/catalog.js';
import { bookedOutcome } from './helpers/outcomes.js';
import { startPrism, type PrismServer } from './helpers/prism.js';
import { redis, removePrefix, uniquePrefix } from './helpers/redis.js';

const specs = fileURLToPath(new URL('../../shared/provider-specs/', import.meta.url));
const prefix = uniquePrefix('conformance');
const client = redis();
let resendMock: PrismServer;
let twilioMock: PrismServer;

beforeAll(async () => {
  [resendMock, twilioMock] = await Promise.all([
    startPrism(`${specs}resend.yaml`),
    startPrism(`${specs}twilio_api_v2010.json`),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([resendMock?.close(), twilioMock?.close()]);
  await removePrefix(client, prefix);
  client.disconnect();
});

const signal = new AbortController().signal;
const now = Date.now();

/** Every message kind: the task type, the outcome kind, and the payload the catalog builds. */
function messageKinds() {
  const kinds: { label: string; type: TaskType; payload: unknown; key: string }[] = [];
  for (const outcome of ['booked', 'rescheduled', 'cancelled'] as const) {
    const o = parseConversationOutcome({
      ...bookedOutcome(`conf-${outcome}`, now),
      outcome,
      customer: {
        id: 'c',
        name: 'Ada <script>alert(1)</script>',
        email: 'ada@example.com',
        phone: '+14155550100',
        locale: 'en-GB',
      },
    });
    kinds.push({
      label: `send_email/${outcome}`,
      type: 'send_email',
      payload: taskDefinition('send_email').buildPayload(o),
      key: `conf-${outcome}:send_email`,
    });
    if (outcome === 'booked') {
      for (const type of ['schedule_reminder', 'follow_up_survey'] as const) {
        kinds.push({
          label: type,
          type,
          payload: taskDefinition(type).buildPayload(o),
          key: `conf-${outcome}:${type}`,
        });
      }
    }
  }
  return kinds;
}

const request = (type: TaskType, payload: unknown, key: string): DeliveryRequest => ({
  type,
  jobId: jobIdFor(key),
  idempotencyKey: key,
  conversationId: 'conf',
  attempt: 1,
  createdAt: now,
  expiresAt: now + 3_600_000,
  payload,
});

describe('conformance with the published provider APIs', () => {
  it('sends every e-mail kind through the resend SDK as the Resend API accepts it', async () => {
    const resend = createResendDelivery({
      apiKey: 're_test_0123456789',
      baseUrl: resendMock.url,
      from: 'Acme Bookings <bookings@acme.example>',
    });
    const emailKinds = messageKinds();
    expect(emailKinds.map((kind) => kind.label)).toEqual([
      'send_email/booked',
      'schedule_reminder',
      'follow_up_survey',
      'send_email/rescheduled',
      'send_email/cancelled',
    ]);
    for (const kind of emailKinds) {
      const email = taskDefinition(kind.type).messages!.email!(kind.payload)!;
      const receipt = await resend.sendEmail(email, request(kind.type, kind.payload, `${kind.key}-ünïcode`), signal);
      expect(receipt, kind.label).toMatchObject({ provider: 'resend', status: 200 });
    }
    expect(resendMock.log.filter((line) => line.includes('[VALIDATOR]') && line.includes('✖'))).toEqual([]);
  });

  it('sends every SMS kind through the twilio SDK as the Twilio API accepts it', async () => {
    const twilio = createTwilioDelivery({
      accountSid: `AC${'0123456789abcdef'.repeat(2)}`,
      authToken: 'test-token',
      from: '+14155550123',
      apiBase: twilioMock.url,
      redis: client,
      prefix,
    });
    for (const type of ['schedule_reminder', 'follow_up_survey'] as const) {
      const kind = messageKinds().find((candidate) => candidate.type === type)!;
      const sms = taskDefinition(type).messages!.sms!(kind.payload)!;
      const receipt = await twilio.sendSms(sms, request(type, kind.payload, kind.key), signal);
      expect(receipt, type).toMatchObject({ provider: 'twilio' });
      expect(receipt.messageId).toBeTruthy();
    }
    expect(twilioMock.log.filter((line) => line.includes('[VALIDATOR]') && line.includes('✖'))).toEqual([]);
  });

  it('would notice a request the specification rejects (the mock validates)', async () => {
    const resend = createResendDelivery({
      apiKey: 're_test_0123456789',
      baseUrl: resendMock.url,
      from: 'not an address',
    });
    const broken = { to: 'ada@example.com', subject: '', html: '', text: '' };
    // Resend's spec requires `from` to be a string and `to` to be present; send an object where a string belongs.
    const error = await resend
      .sendEmail(
        { ...broken, to: 42 as unknown as string },
        request('send_email', {}, 'conf-broken:send_email'),
        signal,
      )
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TerminalDeliveryError);
    expect(resendMock.log.some((line) => /must be string|must match exactly one schema/.test(line))).toBe(true);
  });
});
