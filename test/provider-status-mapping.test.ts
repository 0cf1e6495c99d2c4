/**
 * Every adapter maps an HTTP status the same way (delivery-errors.ts): 408, 429 and 5xx
 * retry, other 4xx are terminal. The real `resend` and `twilio` SDKs talk to a local
 * server that answers each request with the status under test, in the provider's own
 * error format.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryableDeliveryError, TerminalDeliveryError } from '../src/delivery/errors.js';
import { createResendDelivery } from '../src/delivery/providers/resend/resend.js';
import { createTwilioDelivery } from '../src/delivery/providers/twilio/twilio.js';
import { deliveryRequest } from './helpers/delivery-request.js';
import { redis, removePrefix, uniquePrefix } from './helpers/redis.js';

const client = redis();
const prefix = uniquePrefix('status-mapping');
let server: Server;
let baseUrl: string;
/** The status the server answers next; Resend's and Twilio's error bodies differ. */
let answer = 200;

beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const twilio = request.url!.startsWith('/2010-04-01/');
      const body = twilio
        ? {
            status: answer,
            code: 20000 + answer,
            message: `answered ${answer}`,
            more_info: 'https://www.twilio.com/docs/errors',
          }
        : { statusCode: answer, name: 'application_error', message: `answered ${answer}` };
      response.writeHead(answer, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await removePrefix(client, prefix);
  client.disconnect();
});

const CASES: [status: number, kind: typeof RetryableDeliveryError | typeof TerminalDeliveryError][] = [
  [408, RetryableDeliveryError],
  [429, RetryableDeliveryError],
  [503, RetryableDeliveryError],
  [400, TerminalDeliveryError],
  [404, TerminalDeliveryError],
];

describe('HTTP status mapping of the native providers', () => {
  const signal = new AbortController().signal;

  it.each(CASES)('resend: %i is %o', async (status, kind) => {
    const resend = createResendDelivery({ apiKey: 're_test', baseUrl, from: 'Acme <bookings@acme.example>' });
    answer = status;
    const error = await resend
      .sendEmail(
        { to: 'ada@example.com', subject: 's', html: '<p>h</p>', text: 't' },
        deliveryRequest('send_email'),
        signal,
      )
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(kind);
    expect((error as RetryableDeliveryError).details.status).toBe(status);
  });

  it.each(CASES)('twilio: %i is %o', async (status, kind) => {
    const twilio = createTwilioDelivery({
      accountSid: `AC${'a'.repeat(32)}`,
      authToken: 'token',
      from: '+14155550000',
      apiBase: baseUrl,
      redis: client,
      prefix,
    });
    answer = status;
    const error = await twilio
      .sendSms({ to: '+14155550123', body: 'hello' }, deliveryRequest('schedule_reminder'), signal)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(kind);
    expect((error as RetryableDeliveryError).details.status).toBe(status);
  });
});
