/**
 * The provider sandbox: local, stateful fakes of the three places aftercall delivers to,
 * in one HTTP server, so tests, demos and the reliability suite can run the real SDKs
 * against something that remembers, counts and misbehaves on request.
 *
 *   POST /emails                                         Resend (resend-fake.ts)
 *   POST /2010-04-01/Accounts/{AccountSid}/Messages.json Twilio (twilio-fake.ts)
 *   GET  /2010-04-01/Accounts/{AccountSid}/Messages.json Twilio's message list
 *   POST /webhooks/<type>                                Standard Webhooks receiver (webhook-fake.ts)
 *   /_sandbox/...                                        control and read endpoints (control.ts)
 *
 * Pointing a worker at it: RESEND_BASE_URL = `resendBaseUrl`, TWILIO_API_BASE =
 * `twilioApiBase` (the SDK's `https://api.twilio.com` prefix is replaced by it), each
 * type's webhook URL = `webhookUrl(type)`, WEBHOOK_SECRET = `webhookSecret`.
 *
 * Every provider request goes through the same pipeline (provider-pipeline.ts): its
 * destination's outage and limit (resend, twilio, webhook:<type>; destinations.ts,
 * rate-limits.ts), protocol checks, then the faults (faults.ts) in a fixed order drawn
 * from a seeded generator, then the fake's own work, recorded in the delivery log
 * (delivery-log.ts) and in the traffic per destination and second (traffic.ts). `reset()`
 * forgets deliveries, rejections, Resend's idempotency memory, the counters, the traffic
 * and the limit windows, and restarts the generator from its seed; the fault
 * configuration (limits and outages included) stays. `close()` ends held answers by
 * closing their connections.
 *
 * The clock (`now`) decides receipt times, Twilio's dates, the 24-hour idempotency
 * window, the limit windows and when outages start and end; latency and hangs use real
 * timers, and webhook timestamps are checked against the real clock (the
 * `standardwebhooks` package allows five minutes).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { handleControl, CONTROL_PREFIX } from './control.js';
import {
  DeliveryLog,
  type Delivery,
  type DeliveryProvider,
  type Rejection,
  type SandboxStats,
} from './delivery-log.js';
import { ANY_DESTINATION } from './destinations.js';
import {
  copyFaults,
  DEFAULT_FAULTS,
  limitFor,
  mergeFaults,
  outageAt,
  type FaultChange,
  type FaultConfig,
} from './faults.js';
import { BodyTooLargeError, jsonAnswer, MAX_BODY_BYTES, readRequest, sendAnswer, type SandboxRequest } from './http.js';
import { Responder, runProviderRequest, type PipelineContext } from './provider-pipeline.js';
import { createRandom, randomSeed } from './random.js';
import { FixedWindowLimiter } from './rate-limits.js';
import { TrafficLog, type TrafficQuery, type TrafficReport } from './traffic.js';
import { createResendFake } from './resend-fake.js';
import { createTwilioFake, listTwilioMessages, TWILIO_MESSAGES_PATH, twilioError } from './twilio-fake.js';
import { createWebhookFake, WEBHOOK_PATH } from './webhook-fake.js';

export type { Delivery, DeliveryProvider, Rejection, SandboxStats } from './delivery-log.js';
export type {
  FaultChange,
  FaultConfig,
  LatencyConfig,
  OutageChange,
  OutageConfig,
  RateLimitChange,
  RateLimitConfig,
} from './faults.js';
export type { DestinationTraffic, SecondCounts, TrafficQuery, TrafficReport } from './traffic.js';
export { RESEND_INVALID_API_KEY } from './resend-fake.js';
export { TWILIO_INVALID_AUTH_TOKEN } from './twilio-fake.js';

/** The documented test secret webhooks are signed with unless another is given. Not a secret: never use it outside tests. */
export const SANDBOX_WEBHOOK_SECRET = 'whsec_YWZ0ZXJjYWxsLXNhbmRib3gtc2VjcmV0LTAxMjM0NTY=';

export interface SandboxOptions {
  /** 0 (the default) = any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default SANDBOX_WEBHOOK_SECRET. */
  webhookSecret?: string;
  faults?: FaultChange;
  /** Seed of the fault generator; default a random one (see `Sandbox.seed`). */
  seed?: number;
  now?: () => number;
  /** When set, the only credentials accepted; by default any key but the documented invalid ones is. */
  credentials?: { resendApiKey?: string; twilioAuthToken?: string };
}

export interface Sandbox {
  /** http://host:port */
  url: string;
  /** What RESEND_BASE_URL must be set to for the resend SDK. */
  resendBaseUrl: string;
  /** Replaces https://api.twilio.com. */
  twilioApiBase: string;
  /** url + '/webhooks/' + type */
  webhookUrl(type: string): string;
  webhookSecret: string;
  /** The seed of the fault generator, so a run can be repeated. */
  seed: number;
  /** Every accepted request, in arrival order (Resend's idempotent replays are not new deliveries). */
  deliveries(filter?: { provider?: Delivery['provider'] }): Delivery[];
  /** Requests refused over a limit, during an outage or by a drawn fault, in arrival order. */
  rejections(filter?: { provider?: DeliveryProvider; destination?: string }): Rejection[];
  stats(): SandboxStats;
  /** Requests per destination and second, and the most in any window (traffic.ts). */
  traffic(query?: TrafficQuery): TrafficReport;
  faults(): FaultConfig;
  /** Merges the change; throws a ValidationError naming each invalid field. */
  setFaults(change: FaultChange): FaultConfig;
  /** Forgets deliveries, rejections, idempotency memory, counters, traffic and limit windows; restarts the generator from its seed. */
  reset(): void;
  /** Also ends held (hanging) answers. */
  close(): Promise<void>;
}

function checkListenOptions(port: number, host: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new RangeError(`sandbox port: expected an integer from 0 to 65535, got ${port}`);
  if (!host.trim()) throw new RangeError('sandbox host: expected a host name or address');
}

/** The host as it goes into a URL a client can use: brackets for IPv6, loopback for "any address". */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const port = options.port ?? 0;
  const host = options.host ?? '127.0.0.1';
  checkListenOptions(port, host);
  const now = options.now ?? Date.now;
  const webhookSecret = options.webhookSecret ?? SANDBOX_WEBHOOK_SECRET;
  // Fails early on a secret the signature library cannot use.
  new Webhook(webhookSecret);
  const random = createRandom(options.seed ?? randomSeed());
  let faults = mergeFaults(DEFAULT_FAULTS, options.faults ?? {}, now());
  const log = new DeliveryLog();
  const responder = new Responder();
  const limiter = new FixedWindowLimiter();
  const traffic = new TrafficLog(now);
  const context: PipelineContext = { faults: () => faults, random, log, responder, now, limiter, traffic };

  const resend = createResendFake({
    log,
    now,
    ...(options.credentials?.resendApiKey !== undefined && { apiKey: options.credentials.resendApiKey }),
  });
  const twilio = createTwilioFake({
    log,
    now,
    ...(options.credentials?.twilioAuthToken !== undefined && { authToken: options.credentials.twilioAuthToken }),
  });
  const webhook = createWebhookFake({ log, now, secret: webhookSecret });

  const control = {
    faults: () => copyFaults(faults, now()),
    setFaults(change: FaultChange) {
      const at = now();
      faults = mergeFaults(faults, change, at);
      return copyFaults(faults, at);
    },
    reset() {
      log.reset();
      resend.reset?.();
      random.restart();
      limiter.reset();
      traffic.reset();
    },
    deliveries: (filter?: { provider?: DeliveryProvider }) => log.list(filter),
    rejections: (filter?: { provider?: DeliveryProvider; destination?: string }) => log.rejected(filter),
    stats: () => log.stats(),
    traffic: (query?: TrafficQuery) =>
      traffic.report(
        (destination) => limitFor(faults, destination),
        [...Object.keys(faults.limits), ...Object.keys(faults.outages), ...faults.gone].filter(
          (name) => name !== ANY_DESTINATION,
        ),
        query,
      ),
  };

  async function route(request: SandboxRequest, response: ServerResponse): Promise<void> {
    const { method, path } = request;
    if (path.startsWith(CONTROL_PREFIX)) return sendAnswer(response, handleControl(request, control));
    const post = (run: () => Promise<void>) =>
      method === 'POST'
        ? run()
        : sendAnswer(
            response,
            jsonAnswer(
              405,
              { statusCode: 405, name: 'method_not_allowed', message: 'Method is not allowed for the requested path.' },
              { allow: 'POST' },
            ),
          );
    if (path === '/emails') return post(() => runProviderRequest(resend, request, response, context));
    if (TWILIO_MESSAGES_PATH.test(path)) {
      if (method === 'GET') {
        // A read: not counted or limited, but an outage takes the whole API down.
        if (outageAt(faults, 'twilio', now()))
          return sendAnswer(response, twilioError(503, 20503, 'Service Unavailable'));
        return sendAnswer(response, listTwilioMessages(log, request));
      }
      if (method !== 'POST')
        return sendAnswer(response, twilioError(405, 20004, 'Method not allowed', { allow: 'GET, POST' }));
      return runProviderRequest(twilio, request, response, context);
    }
    if (WEBHOOK_PATH.test(path)) return post(() => runProviderRequest(webhook, request, response, context));
    if (path.startsWith('/2010-04-01/'))
      return sendAnswer(response, twilioError(404, 20404, `The requested resource ${path} was not found`));
    sendAnswer(
      response,
      jsonAnswer(404, {
        statusCode: 404,
        name: 'not_found',
        message: `The requested endpoint ${path} does not exist.`,
      }),
    );
  }

  const server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    readRequest(incoming, MAX_BODY_BYTES, now())
      .then((request) => route(request, response))
      .catch((error: unknown) => {
        if (error instanceof BodyTooLargeError)
          sendAnswer(response, jsonAnswer(413, { error: error.message }, { connection: 'close' }));
        else sendAnswer(response, jsonAnswer(500, { error: `sandbox failure: ${(error as Error).message}` }));
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${urlHost(host)}:${address.port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    resendBaseUrl: url,
    twilioApiBase: url,
    webhookUrl: (type: string) => `${url}/webhooks/${encodeURIComponent(type)}`,
    webhookSecret,
    seed: random.seed,
    deliveries: control.deliveries,
    rejections: control.rejections,
    stats: control.stats,
    traffic: control.traffic,
    faults: control.faults,
    setFaults: control.setFaults,
    reset: control.reset,
    close() {
      closing ??= new Promise<void>((resolve) => {
        responder.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
