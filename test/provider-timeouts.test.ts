/**
 * A provider request that hangs ends at its timeout, as a retryable failure, in every
 * adapter: even when garbage collection runs while it waits. (Node may collect an
 * `AbortSignal.timeout` that only `AbortSignal.any` refers to, nodejs/node#57736; the
 * Resend adapter relied on one, and with a collection in between a hung request ran on
 * until the server answered, past the task's expiry.)
 *
 * The server answers 200, but only after HOLD_MS, far beyond each adapter's timeout: a
 * send that succeeds was not timed out.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryableDeliveryError } from '../src/delivery/errors.js';
import type { DeliveryReceipt } from '../src/contract/delivery-port.js';
import { createResendDelivery } from '../src/delivery/providers/resend/resend.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { createWebhookDelivery } from '../src/delivery/providers/webhook/webhook.js';
import { deliveryRequest } from './helpers/delivery-request.js';
import { redis, removePrefix, uniquePrefix, WEBHOOK_SECRET } from './helpers/redis.js';

const TIMEOUT_MS = 200;
const HOLD_MS = 3_000;
const client = redis();
const prefix = uniquePrefix('timeouts');
let server: Server;
let baseUrl: string;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    const twilio = request.url!.startsWith('/2010-04-01/');
    const body = twilio ? { sid: `SM${'0'.repeat(32)}`, status: 'queued' } : { id: 'held' };
    const timer = setTimeout(() => {
      response.writeHead(twilio ? 201 : 200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    }, HOLD_MS);
    response.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await removePrefix(client, prefix);
  client.disconnect();
});

/** Ten sends at once while the collector runs every few milliseconds; what each ended with. */
async function underCollection(send: () => Promise<DeliveryReceipt>): Promise<unknown[]> {
  const collecting = setInterval(gc, 5);
  try {
    return await Promise.all(
      Array.from({ length: 10 }, () =>
        send().then(
          (receipt) => receipt,
          (error: unknown) => error,
        ),
      ),
    );
  } finally {
    clearInterval(collecting);
  }
}

describe('a hung provider request', () => {
  const signal = new AbortController().signal;

  it('times out in the Resend adapter', async () => {
    const resend = createResendDelivery({
      apiKey: 're_test',
      baseUrl,
      from: 'Acme <bookings@acme.example>',
      timeoutMs: TIMEOUT_MS,
    });
    const outcomes = await underCollection(() =>
      resend.sendEmail(
        { to: 'ada@example.com', subject: 's', html: '<p>h</p>', text: 't' },
        deliveryRequest('send_email'),
        signal,
      ),
    );
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(RetryableDeliveryError);
  });

  it('times out in the Twilio adapter', async () => {
    const twilio = createTwilioDelivery({
      accountSid: `AC${'a'.repeat(32)}`,
      authToken: 'token',
      from: '+14155550000',
      apiBase: baseUrl,
      redis: client,
      prefix,
      timeoutMs: TIMEOUT_MS,
    });
    const outcomes = await underCollection(() =>
      twilio.sendSms({ to: '+14155550123', body: 'hello' }, deliveryRequest('schedule_reminder'), signal),
    );
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(RetryableDeliveryError);
  });

  it('times out in the webhook adapter', async () => {
    const webhook = createWebhookDelivery({
      urls: { update_crm: `${baseUrl}/crm` },
      secret: WEBHOOK_SECRET,
      timeoutMs: TIMEOUT_MS,
    });
    const outcomes = await underCollection(() => webhook.deliver(deliveryRequest('update_crm'), signal));
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(RetryableDeliveryError);
  });
});
