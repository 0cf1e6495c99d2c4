/**
 * The web console against a real fleet, for the browser tests and `npm run screenshots`:
 * the HTTP API (with the console) on a free loopback port, an in-process worker delivering
 * to a local webhook receiver (scripted per conversation and path) and to a local Resend
 * stand-in that refuses every e-mail with a text quoting the recipient field, a producer,
 * all on the file's own key prefix. And Debian's chromium driven by playwright-core, which
 * downloads no browser.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createProducer, type Producer } from '../../src/producer/producer.js';
import { startWorker, type FleetWorker } from '../../src/worker/worker.js';
import { startApi, TOKENS, type TestApi } from './api-server.js';
import { redis, removePrefix, TEST_REDIS, testConfig, testEnv } from './redis.js';
import { scriptAnswers, startReceiver, type Answer, type WebhookReceiver } from './webhook-receiver.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Debian's chromium, headless, with nothing that reaches the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** What the Resend stand-in says about every e-mail: a provider quoting customer input, markup included. */
export const RESEND_REFUSAL =
  'Invalid `to` field: "<script>document.title=\'pwned\'</script>" is not an e-mail address';

export interface ConsoleFixture {
  prefix: string;
  url: string;
  api: TestApi;
  producer: Producer;
  receiver: WebhookReceiver;
  /** Answers of the webhook receiver by `<conversationId> <path>` (e.g. `conv-1 /crm`), in order; 200 without. */
  scripts: Map<string, Answer[]>;
  client: ReturnType<typeof redis>;
  close(): Promise<void>;
}

async function startResendStandIn(refusal: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(422, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ statusCode: 422, name: 'validation_error', message: refusal }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface ConsoleFixtureOptions {
  /** What the Resend stand-in answers to every e-mail (422); default RESEND_REFUSAL. */
  resendRefusal?: string;
}

export async function startConsoleFixture(
  prefix: string,
  options: ConsoleFixtureOptions = {},
): Promise<ConsoleFixture> {
  const client = redis();
  const receiver = await startReceiver();
  const resend = await startResendStandIn(options.resendRefusal ?? RESEND_REFUSAL);
  const scripts = scriptAnswers(receiver, (receipt) => `${receipt.body.conversationId} ${receipt.path}`);
  const extra = {
    CIRCUIT_MIN_CALLS: '100000',
    RESEND_API_KEY: 're_console_test',
    RESEND_BASE_URL: resend.url,
    EMAIL_FROM: 'Acme <bookings@acme.example>',
  };
  const worker: FleetWorker = await startWorker({
    config: testConfig(prefix, receiver.url, extra),
    concurrency: 4,
    sweeper: false,
  });
  await worker.ready;
  const api = await startApi(prefix, testEnv(prefix, receiver.url, extra));
  const producer = createProducer({ redis: TEST_REDIS, prefix });
  return {
    prefix,
    url: api.url,
    api,
    producer,
    receiver,
    scripts,
    client,
    async close() {
      await worker.close();
      await api.close();
      await producer.close();
      await receiver.close();
      await resend.close();
      await removePrefix(client, prefix);
      client.disconnect();
    },
  };
}

/** Logs a page in through the login form with the token of `role`. */
export async function logIn(page: Page, baseUrl: string, role: keyof typeof TOKENS): Promise<void> {
  await page.goto(`${baseUrl}/console/login`);
  await page.fill('input[name=token]', TOKENS[role]);
  await Promise.all([page.waitForURL(/\/console(\?|$)/), page.click('button[type=submit]')]);
}
