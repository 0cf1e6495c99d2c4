/**
 * SMS through Twilio, with the official `twilio` SDK.
 *
 * Twilio's Messages API takes no idempotency key, so aftercall keeps a delivery ledger in
 * Redis, in the task type's slot: `<prefix>:{<type>}:sms-ledger:<key>` holds the message
 * SID once Twilio accepted the message. A retried or re-run task finds the SID there and
 * is not sent again. One window remains: a crash (or a lost connection) after Twilio
 * accepted the message and before the ledger write; the task is then retried and the
 * customer may get the SMS twice. The reliability suite counts such duplicates.
 *
 * The SDK has no base-URL option; a custom httpClient rewrites `https://api.twilio.com` to
 * TWILIO_API_BASE when set (a sandbox, a mock), and adds the headers
 * `X-Aftercall-Idempotency-Key`, `X-Aftercall-Expires-At` and `X-Aftercall-Type` (Twilio
 * ignores them; a sandbox records them).
 *
 * Errors map here, in one place: 429 / code 20429 and 5xx retryable (honouring
 * Retry-After); network failures and timeouts retryable; 401 terminal as a configuration
 * error; an invalid `To` (21211), an unsubscribed recipient (21610) and every other 4xx
 * terminal.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import twilio from 'twilio';

type TwilioRequestClient = InstanceType<typeof twilio.RequestClient>;
type TwilioRequestOptions<T> = Parameters<TwilioRequestClient['request']>[0] & { data?: T };
type TwilioResponse<T> = Awaited<ReturnType<TwilioRequestClient['request']>> & { body: T };
import { encodeKeyPart, providerIdempotencyKey } from '../queues/job-id.js';
import type { RedisClient } from '../queues/scripts.js';
import { toIso } from '../time.js';
import { parseRetryAfter, RetryableDeliveryError, TerminalDeliveryError } from './delivery-errors.js';
import type { DeliveryReceipt, DeliveryRequest } from './delivery-port.js';
import type { SmsMessage } from './message.js';
import { ignoreProviderRequest, type ProviderObserver } from './provider-observer.js';

export const TWILIO_PROVIDER = 'twilio';
const TWILIO_API = 'https://api.twilio.com';

export interface TwilioDeliveryOptions {
  accountSid: string;
  authToken: string;
  /** Sender number (E.164) or a Messaging Service SID (MG...). */
  from: string;
  /** Replaces https://api.twilio.com (a sandbox or mock). */
  apiBase?: string;
  timeoutMs?: number;
  /** Where the ledger lives. */
  redis: RedisClient;
  prefix: string;
  /** How long a ledger entry is kept; default 7 days. */
  ledgerTtlMs?: number;
  now?: () => number;
  observe?: ProviderObserver;
}

export interface SmsSender {
  readonly provider: string;
  sendSms(message: SmsMessage, request: DeliveryRequest, signal: AbortSignal): Promise<DeliveryReceipt>;
}

interface CallContext {
  headers: Record<string, string>;
  response?: { statusCode: number; headers: Record<string, string> };
}

/** The SDK's HTTP client, pointed at `apiBase` and carrying aftercall's headers. */
class AftercallRequestClient extends twilio.RequestClient {
  constructor(
    private readonly apiBase: string | undefined,
    private readonly context: AsyncLocalStorage<CallContext>,
    timeoutMs: number,
  ) {
    super({ timeout: timeoutMs });
  }

  override async request<TData>(opts: TwilioRequestOptions<TData>): Promise<TwilioResponse<TData>> {
    const call = this.context.getStore();
    const uri = this.apiBase && opts.uri.startsWith(TWILIO_API) ? this.apiBase.replace(/\/$/, '') + opts.uri.slice(TWILIO_API.length) : opts.uri;
    const response = await super.request<TData>({ ...opts, uri, headers: { ...opts.headers, ...call?.headers } });
    if (call) call.response = { statusCode: response.statusCode, headers: response.headers as Record<string, string> };
    return response;
  }
}

/** The one place Twilio's answers become delivery outcomes. */
export function classifyTwilioError(error: unknown, retryAfterHeader: string | undefined, now: number): Error {
  if (error instanceof twilio.RestException) {
    const details = { provider: TWILIO_PROVIDER, status: error.status, ...(error.code !== undefined && { code: error.code }) };
    const message = `twilio answered ${error.status}${error.code ? ` (code ${error.code})` : ''}: ${error.message}`;
    if (error.status === 429 || error.code === 20429 || error.status >= 500) {
      const retryAfterMs = parseRetryAfter(retryAfterHeader, now);
      return new RetryableDeliveryError(message, { ...details, ...(retryAfterMs !== undefined && { retryAfterMs }) });
    }
    const configuration = error.status === 401 || error.code === 20003;
    return new TerminalDeliveryError(configuration ? `configuration error: ${message} (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)` : message, {
      ...details,
      configuration,
    });
  }
  const cause = error as Error & { code?: string };
  const timedOut = cause.code === 'ECONNABORTED' || /timeout/i.test(cause.message ?? '');
  return new RetryableDeliveryError(`twilio request failed: ${timedOut ? 'timed out' : cause.message}`, { provider: TWILIO_PROVIDER });
}

export function createTwilioDelivery(options: TwilioDeliveryOptions): SmsSender {
  const context = new AsyncLocalStorage<CallContext>();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const client = twilio(options.accountSid, options.authToken, {
    httpClient: new AftercallRequestClient(options.apiBase, context, timeoutMs),
  });
  const now = options.now ?? Date.now;
  const observe = options.observe ?? ignoreProviderRequest;
  const ledgerTtlMs = options.ledgerTtlMs ?? 7 * 24 * 3_600_000;
  const sender = options.from.startsWith('MG') ? { messagingServiceSid: options.from } : { from: options.from };
  const ledgerKey = (request: DeliveryRequest) => `${options.prefix}:{${request.type}}:sms-ledger:${encodeKeyPart(request.idempotencyKey)}`;

  return {
    provider: TWILIO_PROVIDER,
    async sendSms(message, request) {
      const ledger = ledgerKey(request);
      const sent = await options.redis.get(ledger);
      if (sent) return { provider: TWILIO_PROVIDER, messageId: sent };

      const call: CallContext = {
        headers: {
          'X-Aftercall-Idempotency-Key': providerIdempotencyKey(request.idempotencyKey),
          'X-Aftercall-Expires-At': toIso(request.expiresAt),
          'X-Aftercall-Type': request.type,
        },
      };
      const started = performance.now();
      let sid: string;
      try {
        const created = await context.run(call, () => client.messages.create({ to: message.to, body: message.body, ...sender }));
        sid = created.sid;
      } catch (error) {
        observe(TWILIO_PROVIDER, call.response ? String(call.response.statusCode) : 'network_error', (performance.now() - started) / 1000);
        throw classifyTwilioError(error, call.response?.headers['retry-after'], now());
      }
      observe(TWILIO_PROVIDER, String(call.response?.statusCode ?? 201), (performance.now() - started) / 1000);
      // The one window: a crash before this write lets a retry send the SMS again.
      await options.redis.set(ledger, sid, 'PX', ledgerTtlMs);
      return { provider: TWILIO_PROVIDER, status: call.response?.statusCode ?? 201, messageId: sid };
    },
  };
}
