/**
 * The generic delivery adapter: an HTTP POST of JSON to the URL configured for the task's
 * type, signed per the Standard Webhooks specification (https://www.standardwebhooks.com).
 *
 * Headers:
 *   webhook-id         the idempotency key; HTTP headers carry ASCII only, so a key with
 *                      other characters travels percent-encoded (see `asciiKey`);
 *                      receivers deduplicate on it
 *   webhook-timestamp  seconds since the epoch
 *   webhook-signature  v1,<base64 HMAC-SHA256 of "id.timestamp.body"> with WEBHOOK_SECRET
 *   idempotency-key    the same ASCII form, for receivers that look there
 * Body: { type, idempotencyKey (the key itself), conversationId, jobId, attempt,
 *         createdAt, expiresAt (ISO-8601), payload }
 *
 * Responses: 2xx delivered; 408, 429 and 5xx retryable (Retry-After honoured); every
 * other status terminal, 401 and 403 flagged as configuration errors (the receiver
 * refuses our signature); redirects are not followed (terminal: the URL is wrong);
 * network errors and the per-request timeout (default 10 s) retryable.
 *
 * Requests go through node:http(s) with keep-alive agents rather than fetch: in Node 20,
 * fetch costs about three times the CPU per request, which a worker delivering hundreds
 * of webhooks a second feels.
 */
import { clientRequestSpan } from '../../../contract/tracing.js';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { asciiKey } from '../../../tasks/job-id.js';
import { toIso } from '../../../contract/time.js';
import { classifyHttpStatus, retryableError, RetryableDeliveryError, TerminalDeliveryError } from '../../errors.js';
import type { DeliveryPort, DeliveryReceipt, DeliveryRequest } from '../../../contract/delivery-port.js';
import { ignoreProviderRequest, type ProviderObserver } from '../../observer.js';
import { readRateLimitHeaders } from '../../rate-limit.js';

export interface WebhookDeliveryOptions {
  /** Destination URL by task type. */
  urls: Readonly<Record<string, string | undefined>>;
  /** Signing secret in `whsec_<base64>` form. */
  secret: string;
  /**
   * The secret being rotated out (WEBHOOK_PREVIOUS_SECRET): while set, each request
   * carries both signatures, space-separated, as Standard Webhooks describes, so a
   * receiver verifies with either while it changes over.
   */
  previousSecret?: string;
  timeoutMs?: number;
  now?: () => number;
  observe?: ProviderObserver;
}

export const WEBHOOK_PROVIDER = 'webhook';

export function webhookBody(request: DeliveryRequest): string {
  return JSON.stringify({
    type: request.type,
    idempotencyKey: request.idempotencyKey,
    conversationId: request.conversationId,
    jobId: request.jobId,
    attempt: request.attempt,
    createdAt: toIso(request.createdAt),
    expiresAt: toIso(request.expiresAt),
    payload: request.payload,
  });
}

const agents = { 'http:': new HttpAgent({ keepAlive: true }), 'https:': new HttpsAgent({ keepAlive: true }) };

class RequestTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** POSTs a body; resolves with the status and headers once the answer has been read. */
function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, {
      method: 'POST',
      agent: agents[url.protocol as 'http:' | 'https:'],
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(
      () => request.destroy(new RequestTimeoutError(`timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const abort = () => request.destroy(new Error('aborted'));
    signal.addEventListener('abort', abort, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    };
    request.on('response', (response) => {
      response.on('error', (error) => {
        done();
        reject(error);
      });
      response.on('end', () => {
        done();
        resolve({ status: response.statusCode ?? 0, headers: response.headers });
      });
      response.resume(); // the body is not needed; reading it frees the connection for reuse
    });
    request.on('error', (error) => {
      done();
      reject(error);
    });
    request.end(body);
  });
}

const SECRET_PREFIX = 'whsec_';

/**
 * Signs as Standard Webhooks' `Webhook.sign` does (v1: base64 HMAC-SHA256 of
 * "id.timestamp.body" under the secret's decoded key), with node:crypto's native HMAC:
 * the package's own JavaScript SHA-256 cost 16.5 µs per request, node:crypto 3.9 µs. The
 * package still checks the secret when the signer is made (it throws on one that is not
 * `whsec_<base64>`), and test/webhook-signature.test.ts compares the two signatures.
 */
export function webhookSigner(secret: string): (id: string, sentAt: Date, body: string) => string {
  new Webhook(secret);
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
  return (id, sentAt, body) =>
    `v1,${createHmac('sha256', key)
      .update(`${id}.${Math.floor(sentAt.getTime() / 1000)}.${body}`)
      .digest('base64')}`;
}

export function createWebhookDelivery(options: WebhookDeliveryOptions): DeliveryPort {
  const signers = [options.secret, ...(options.previousSecret ? [options.previousSecret] : [])].map(webhookSigner);
  // Each type's URL parsed once, not per request.
  const targets = new Map<string, URL>();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const observe = options.observe ?? ignoreProviderRequest;

  return {
    provider: WEBHOOK_PROVIDER,
    async deliver(request: DeliveryRequest, signal: AbortSignal): Promise<DeliveryReceipt> {
      const url = options.urls[request.type];
      if (!url) {
        throw new TerminalDeliveryError(`no webhook URL configured for ${request.type}`, {
          provider: WEBHOOK_PROVIDER,
          configuration: true,
        });
      }
      const body = webhookBody(request);
      const id = asciiKey(request.idempotencyKey);
      const sentAt = new Date(now());
      const started = performance.now();
      let response: { status: number; headers: IncomingHttpHeaders };
      try {
        // A client span (contract/tracing.ts); the request carries its traceparent.
        let target = targets.get(url);
        if (!target) targets.set(url, (target = new URL(url)));
        response = await clientRequestSpan(
          'POST',
          target,
          (traceHeaders) =>
            post(
              target,
              {
                'content-type': 'application/json',
                'user-agent': 'aftercall',
                'webhook-id': id,
                'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
                'webhook-signature': signers.map((sign) => sign(id, sentAt, body)).join(' '),
                'idempotency-key': id,
                ...traceHeaders,
              },
              body,
              timeoutMs,
              signal,
            ),
          (answer) => answer.status,
        );
      } catch (error) {
        const cause = error as Error;
        const timedOut = cause.name === 'TimeoutError';
        observe(WEBHOOK_PROVIDER, timedOut ? 'timeout' : 'network_error', (performance.now() - started) / 1000);
        const reason = timedOut ? `timed out after ${timeoutMs} ms` : cause.message;
        throw new RetryableDeliveryError(`webhook request failed: ${reason}`, { provider: WEBHOOK_PROVIDER });
      }
      observe(WEBHOOK_PROVIDER, String(response.status), (performance.now() - started) / 1000);
      const kind = classifyHttpStatus(response.status);
      const rateLimit = readRateLimitHeaders(response.headers);
      if (!kind) return { provider: WEBHOOK_PROVIDER, status: response.status, ...(rateLimit && { rateLimit }) };
      const message = `webhook answered HTTP ${response.status}`;
      if (kind === 'retryable') {
        throw retryableError(
          message,
          { provider: WEBHOOK_PROVIDER, status: response.status, ...(rateLimit && { rateLimit }) },
          response.headers['retry-after'],
          now(),
        );
      }
      // 401 and 403: the receiver refuses our signature or credentials; every task of the type will fail alike.
      const configuration = response.status === 401 || response.status === 403;
      // 410: the receiver says this endpoint is gone for good; the destination is held
      // until an operator closes it.
      const gone = response.status === 410;
      throw new TerminalDeliveryError(
        configuration ? `configuration error: ${message} (check WEBHOOK_SECRET and the receiver)` : message,
        {
          provider: WEBHOOK_PROVIDER,
          status: response.status,
          ...(configuration && { configuration }),
          ...(gone && { gone }),
        },
      );
    },
  };
}
