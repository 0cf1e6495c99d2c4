/**
 * E-mail through Resend, with the official `resend` SDK.
 *
 * Every send carries the task's idempotency key (`emails.send(payload, { idempotencyKey })`),
 * so a retried or re-run task is delivered once: Resend answers a repeated key with the
 * first answer for 24 hours. The task's expiry and type travel as e-mail headers
 * (`X-Aftercall-Expires-At`, `X-Aftercall-Type`), so a receiving side can refuse stale mail.
 * Each request is an OpenTelemetry client span that sends its `traceparent` (TracedResend).
 *
 * The SDK returns `{ data, error }` instead of throwing; its answers map to delivery errors
 * here, in one place:
 *   no status (network failure, timeout), 408     retryable
 *   429 (rate_limit_exceeded, quotas)             retryable, honouring retry-after
 *   409 concurrent_idempotent_requests            retryable (the same key is in flight)
 *   5xx                                            retryable
 *   401 (missing or restricted API key),
 *   403 (invalid API key, unverified sending domain) terminal, flagged as a configuration error
 *   422 (validation), 409 invalid_idempotent_request,
 *   every other 4xx                                terminal
 */
import { Resend, type Response as ResendAnswer } from 'resend';
import { clientRequestSpan, type ClientOutcome } from '../../../contract/tracing.js';
import { providerIdempotencyKey } from '../../../tasks/job-id.js';
import { toIso } from '../../../contract/time.js';
import { classifyHttpStatus, retryableError, TerminalDeliveryError } from '../../errors.js';
import type { DeliveryPort, DeliveryReceipt, DeliveryRequest } from '../../../contract/delivery-port.js';
import { taskDefinition, type TaskType } from '../../../tasks/catalog.js';
import type { EmailMessage } from '../../../tasks/message.js';
import { ignoreProviderRequest, type ProviderObserver } from '../../observer.js';
import { readRateLimitHeaders } from '../../rate-limit.js';

export const RESEND_PROVIDER = 'resend';

export interface ResendDeliveryOptions {
  apiKey: string;
  /** Default: the SDK's own (RESEND_BASE_URL, else https://api.resend.com). */
  baseUrl?: string;
  /** Sender, e.g. `Acme <bookings@acme.example>`. */
  from: string;
  timeoutMs?: number;
  now?: () => number;
  observe?: ProviderObserver;
}

/** A DeliveryPort for types with an e-mail message; `sendEmail` sends a given message. */
export interface EmailSender extends DeliveryPort {
  sendEmail(message: EmailMessage, request: DeliveryRequest, signal: AbortSignal): Promise<DeliveryReceipt>;
}

interface ResendError {
  message: string;
  statusCode: number | null;
  name: string;
}

/** The one place Resend's answers become delivery outcomes. */
export function classifyResendError(error: ResendError, headers: Record<string, string> | null, now: number): Error {
  const rateLimit = readRateLimitHeaders(headers);
  const details = {
    provider: RESEND_PROVIDER,
    ...(error.statusCode !== null && { status: error.statusCode }),
    code: error.name,
    ...(rateLimit && { rateLimit }),
  };
  const message = `resend answered ${error.statusCode ?? 'no status'} ${error.name}: ${error.message}`;
  const status = error.statusCode;
  if (
    status === null ||
    classifyHttpStatus(status) === 'retryable' ||
    error.name === 'rate_limit_exceeded' ||
    error.name === 'concurrent_idempotent_requests'
  ) {
    return retryableError(message, details, headers?.['retry-after'], now);
  }
  // Every task of the type fails alike: the key or the sending domain is refused.
  const configuration =
    status === 401 || status === 403 || error.name === 'missing_api_key' || error.name === 'invalid_api_key';
  return new TerminalDeliveryError(configuration ? `configuration error: ${message} (check RESEND_API_KEY)` : message, {
    ...details,
    configuration,
  });
}

/**
 * The SDK's client with each HTTP request as an OpenTelemetry client span (HTTP client
 * semantic conventions, contract/tracing.ts) under the attempt's span, carrying its
 * `traceparent`. The SDK takes no custom fetch or HTTP client, but sends every request
 * through its public `fetchRequest(path, init)` (one `fetch`, answer read): the span is
 * around that. The SDK does not pass the answer's HTTP status on: the span's status code is
 * the one Resend states in its error body (`statusCode`; the HTTP status when the body is not
 * JSON) and 200 for a success, Resend's documented answer to POST /emails. A request that got
 * no answer (the SDK returns it as an error without a status) records the abort reason's
 * name (TimeoutError) or `_OTHER` as error.type.
 */
class TracedResend extends Resend {
  override fetchRequest<T>(path: string, init: RequestInit = {}): Promise<ResendAnswer<T>> {
    let url: URL;
    try {
      url = new URL(`${this.baseUrl}${path}`);
    } catch {
      return super.fetchRequest<T>(path, init); // not a URL: the SDK answers its own error, no request is made
    }
    return clientRequestSpan(
      init.method ?? 'GET',
      url,
      (traceHeaders) => {
        const headers = new Headers(init.headers);
        for (const [name, value] of Object.entries(traceHeaders)) headers.set(name, value);
        return super.fetchRequest<T>(path, { ...init, headers });
      },
      (answer) => resendOutcome(answer, init.signal),
    );
  }
}

function resendOutcome(answer: ResendAnswer<unknown>, signal: AbortSignal | null | undefined): ClientOutcome {
  if (!answer.error) return 200;
  const status = (answer.error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') return status;
  const reason = signal?.aborted ? (signal.reason as { name?: unknown } | undefined)?.name : undefined;
  return { errorType: typeof reason === 'string' ? reason : '_OTHER', message: answer.error.message };
}

export function createResendDelivery(options: ResendDeliveryOptions): EmailSender {
  const resend = new TracedResend(options.apiKey, options.baseUrl ? { baseUrl: options.baseUrl } : undefined);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const observe = options.observe ?? ignoreProviderRequest;

  const emailOf = (request: DeliveryRequest) =>
    taskDefinition(request.type as TaskType).messages?.email?.(request.payload);

  return {
    provider: RESEND_PROVIDER,
    reaches: (request) => emailOf(request) !== undefined,
    deliver(request, signal) {
      const message = emailOf(request as DeliveryRequest);
      if (!message) {
        throw new TerminalDeliveryError(`${request.type} has no e-mail for this customer (no e-mail address)`, {
          provider: RESEND_PROVIDER,
        });
      }
      return this.sendEmail(message, request as DeliveryRequest, signal);
    },
    async sendEmail(message, request, signal) {
      const started = performance.now();
      // The request timeout is a timer this call holds, not AbortSignal.timeout inside
      // AbortSignal.any: Node (20 and later, nodejs/node#57736) may garbage-collect a timeout
      // signal that only a composite signal refers to, and then it never fires: a hung
      // request would run past its expiry.
      const deadline = new AbortController();
      const timer = setTimeout(
        () => deadline.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError')),
        timeoutMs,
      );
      const cancel = () => deadline.abort(signal.reason);
      signal.addEventListener('abort', cancel, { once: true });
      let answer: Awaited<ReturnType<typeof resend.emails.send>>;
      try {
        answer = await resend.emails.send(
          {
            from: options.from,
            to: [message.to],
            subject: message.subject,
            html: message.html,
            text: message.text,
            headers: { 'X-Aftercall-Expires-At': toIso(request.expiresAt), 'X-Aftercall-Type': request.type },
          },
          { idempotencyKey: providerIdempotencyKey(request.idempotencyKey), signal: deadline.signal } as {
            idempotencyKey: string;
          },
        );
      } finally {
        clearTimeout(timer);
        signal.removeEventListener('abort', cancel);
      }
      const { data, error, headers } = answer;
      const seconds = (performance.now() - started) / 1000;
      if (error) {
        observe(RESEND_PROVIDER, error.statusCode === null ? 'network_error' : String(error.statusCode), seconds);
        throw classifyResendError(error, headers, now());
      }
      observe(RESEND_PROVIDER, '200', seconds);
      const rateLimit = readRateLimitHeaders(headers);
      return {
        provider: RESEND_PROVIDER,
        status: 200,
        ...(data?.id && { messageId: data.id }),
        ...(rateLimit && { rateLimit }),
      };
    },
  };
}
