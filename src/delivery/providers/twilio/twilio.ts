/**
 * SMS through Twilio, with the official `twilio` SDK.
 *
 * Twilio's Messages API takes no idempotency key, so aftercall keeps a delivery ledger in
 * Redis, in the task type's slot: `<prefix>:{<type>}:sms-ledger:<key>`.
 *   - Before sending, the ledger says `attempted:<time>`; once Twilio accepted the
 *     message, it holds the message SID. A retried or re-run task that finds a SID is not
 *     sent again.
 *   - A task that finds `attempted:` (the previous attempt's answer never came back: a
 *     timeout, a lost connection, a crash of the worker) first asks Twilio for the
 *     recipient's recent messages; one with the same body created since that attempt means
 *     the message went out, and it is recorded instead of sent again.
 * What remains: a message Twilio has accepted but does not list yet (its list is
 * eventually consistent), and, in principle, an identical message to the same recipient
 * from another task in the same minute (taken for this one). The reliability suite
 * counts SMS duplicates under crashes and storms.
 *
 * The SDK has no base-URL option; a custom httpClient rewrites `https://api.twilio.com` to
 * TWILIO_API_BASE when set (a sandbox, a mock), and adds the headers
 * `X-Aftercall-Idempotency-Key`, `X-Aftercall-Expires-At` and `X-Aftercall-Type` (Twilio
 * ignores them; a sandbox records them). The same client makes each HTTP request an
 * OpenTelemetry client span (HTTP client semantic conventions, the status Twilio answered)
 * under the attempt's span, and sends its `traceparent`.
 *
 * Errors map here, in one place: 408, 429 / code 20429 and 5xx retryable (honouring
 * Retry-After); network failures and timeouts retryable; 401 and 403 terminal as a
 * configuration error; an invalid `To` (21211), an unsubscribed recipient (21610) and every other 4xx
 * terminal.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type TwilioSdk from 'twilio';

type Twilio = typeof TwilioSdk;
type TwilioRequestClient = InstanceType<Twilio['RequestClient']>;
type TwilioRequestOptions<T> = Parameters<TwilioRequestClient['request']>[0] & { data?: T };
type TwilioResponse<T> = Awaited<ReturnType<TwilioRequestClient['request']>> & { body: T };
import { clientRequestSpan } from '../../../contract/tracing.js';
import { providerIdempotencyKey } from '../../../tasks/job-id.js';
import { typeKeys } from '../../../redis/keys.js';
import type { RedisClient } from '../../../redis/scripts.js';
import { toIso } from '../../../contract/time.js';
import { classifyHttpStatus, retryableError, RetryableDeliveryError, TerminalDeliveryError } from '../../errors.js';
import type { DeliveryPort, DeliveryReceipt, DeliveryRequest } from '../../../contract/delivery-port.js';
import { taskDefinition, type TaskType } from '../../../tasks/catalog.js';
import type { SmsMessage } from '../../../tasks/message.js';
import { ignoreProviderRequest, type ProviderObserver } from '../../observer.js';

export const TWILIO_PROVIDER = 'twilio';
const ATTEMPTED = 'attempted:';
/** Allowance between our clock and Twilio's when matching a message to an attempt. */
const CLOCK_SKEW_MS = 30_000;
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

/** A DeliveryPort for types with an SMS message; `sendSms` sends a given message. */
export interface SmsSender extends DeliveryPort {
  sendSms(message: SmsMessage, request: DeliveryRequest, signal: AbortSignal): Promise<DeliveryReceipt>;
}

interface CallContext {
  headers: Record<string, string>;
  response?: { statusCode: number; headers: Record<string, string> };
}

// The SDK is large (about 20 MB and 150 ms to load): loaded on first use, so that a
// voice-agent server importing aftercall's producer never pays for it.
let sdk: Promise<Twilio> | undefined;
const loadTwilio = () =>
  (sdk ??= import('twilio').then(
    (module) => (module as unknown as { default: Twilio }).default ?? (module as unknown as Twilio),
  ));

/**
 * The SDK's HTTP client, pointed at `apiBase` and carrying aftercall's headers; each request
 * (the message's POST, the ledger's look-up GET) is a client span with `traceparent`.
 */
function requestClientClass(twilio: Twilio) {
  return class AftercallRequestClient extends twilio.RequestClient {
    constructor(
      private readonly apiBase: string | undefined,
      private readonly context: AsyncLocalStorage<CallContext>,
      timeoutMs: number,
    ) {
      super({ timeout: timeoutMs });
    }

    override async request<TData>(opts: TwilioRequestOptions<TData>): Promise<TwilioResponse<TData>> {
      const call = this.context.getStore();
      const uri =
        this.apiBase && opts.uri.startsWith(TWILIO_API)
          ? this.apiBase.replace(/\/$/, '') + opts.uri.slice(TWILIO_API.length)
          : opts.uri;
      // Each HTTP request is a client span under the attempt's span (contract/tracing.ts),
      // and carries its traceparent.
      const response = await clientRequestSpan(
        opts.method,
        new URL(uri),
        (traceHeaders) =>
          super.request<TData>({ ...opts, uri, headers: { ...opts.headers, ...call?.headers, ...traceHeaders } }),
        (answer) => answer.statusCode,
      );
      if (call)
        call.response = { statusCode: response.statusCode, headers: response.headers as Record<string, string> };
      return response;
    }
  };
}

interface TwilioRestError {
  status: number;
  code?: number;
  message: string;
}

/** The one place Twilio's answers become delivery outcomes. */
export function classifyTwilioError(error: unknown, retryAfterHeader: string | undefined, now: number): Error {
  if (isRestError(error)) {
    const rest = error as TwilioRestError;
    const details = {
      provider: TWILIO_PROVIDER,
      status: rest.status,
      ...(rest.code !== undefined && { code: rest.code }),
    };
    const message = `twilio answered ${rest.status}${rest.code ? ` (code ${rest.code})` : ''}: ${rest.message}`;
    if (classifyHttpStatus(rest.status) === 'retryable' || rest.code === 20429) {
      return retryableError(message, details, retryAfterHeader, now);
    }
    // 401 and 403: the account or its credentials are refused; every SMS will fail alike.
    const configuration = rest.status === 401 || rest.status === 403 || rest.code === 20003;
    return new TerminalDeliveryError(
      configuration ? `configuration error: ${message} (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)` : message,
      {
        ...details,
        configuration,
      },
    );
  }
  const cause = error as Error & { code?: string };
  const timedOut = cause.code === 'ECONNABORTED' || /timeout/i.test(cause.message ?? '');
  return new RetryableDeliveryError(`twilio request failed: ${timedOut ? 'timed out' : cause.message}`, {
    provider: TWILIO_PROVIDER,
  });
}

/** Twilio's RestException: an error with a numeric HTTP status (the SDK throws it for every error answer). */
function isRestError(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.constructor.name === 'RestException' &&
    typeof (error as { status?: unknown }).status === 'number'
  );
}

export function createTwilioDelivery(options: TwilioDeliveryOptions): SmsSender {
  const context = new AsyncLocalStorage<CallContext>();
  const timeoutMs = options.timeoutMs ?? 10_000;
  let clientPromise: Promise<ReturnType<Twilio>> | undefined;
  const twilioClient = () =>
    (clientPromise ??= loadTwilio().then((twilio) => {
      const RequestClient = requestClientClass(twilio);
      return twilio(options.accountSid, options.authToken, {
        httpClient: new RequestClient(options.apiBase, context, timeoutMs),
      });
    }));
  const now = options.now ?? Date.now;
  const observe = options.observe ?? ignoreProviderRequest;
  const ledgerTtlMs = options.ledgerTtlMs ?? 7 * 24 * 3_600_000;
  const sender = options.from.startsWith('MG') ? { messagingServiceSid: options.from } : { from: options.from };
  const ledgerKey = (request: DeliveryRequest) =>
    typeKeys(options.prefix, request.type).smsLedger(request.idempotencyKey);

  /** The SID of a message with this body to this recipient created since `since` (less a clock skew), if any. */
  async function findSent(message: SmsMessage, since: number): Promise<string | undefined> {
    let recent: { sid: string; body: string; dateCreated: Date }[];
    try {
      recent = await (await twilioClient()).messages.list({ to: message.to, limit: 20 });
    } catch (error) {
      throw classifyTwilioError(error, undefined, now());
    }
    return recent.find((sent) => sent.body === message.body && sent.dateCreated.getTime() >= since - CLOCK_SKEW_MS)
      ?.sid;
  }

  const smsOf = (request: DeliveryRequest) => taskDefinition(request.type as TaskType).messages?.sms?.(request.payload);

  return {
    provider: TWILIO_PROVIDER,
    reaches: (request) => smsOf(request) !== undefined,
    deliver(request, signal) {
      const message = smsOf(request as DeliveryRequest);
      if (!message) {
        throw new TerminalDeliveryError(`${request.type} has no SMS for this customer (no phone number)`, {
          provider: TWILIO_PROVIDER,
        });
      }
      return this.sendSms(message, request as DeliveryRequest, signal);
    },
    async sendSms(message, request) {
      const ledger = ledgerKey(request);
      const entry = await options.redis.get(ledger);
      if (entry && !entry.startsWith(ATTEMPTED)) return { provider: TWILIO_PROVIDER, messageId: entry };
      if (entry) {
        const found = await findSent(message, Number(entry.slice(ATTEMPTED.length)));
        if (found) {
          await options.redis.set(ledger, found, 'PX', ledgerTtlMs);
          return { provider: TWILIO_PROVIDER, messageId: found };
        }
      }
      await options.redis.set(ledger, `${ATTEMPTED}${now()}`, 'PX', ledgerTtlMs);

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
        const client = await twilioClient();
        const created = await context.run(call, () =>
          client.messages.create({ to: message.to, body: message.body, ...sender }),
        );
        sid = created.sid;
      } catch (error) {
        observe(
          TWILIO_PROVIDER,
          call.response ? String(call.response.statusCode) : 'network_error',
          (performance.now() - started) / 1000,
        );
        // Twilio answered 4xx: no message was created, so the next attempt need not look.
        if (call.response && call.response.statusCode < 500) await options.redis.del(ledger);
        throw classifyTwilioError(error, call.response?.headers['retry-after'], now());
      }
      observe(TWILIO_PROVIDER, String(call.response?.statusCode ?? 201), (performance.now() - started) / 1000);
      // A crash before this write is covered by the `attempted:` mark: the retry looks first.
      await options.redis.set(ledger, sid, 'PX', ledgerTtlMs);
      return { provider: TWILIO_PROVIDER, status: call.response?.statusCode ?? 201, messageId: sid };
    },
  };
}
