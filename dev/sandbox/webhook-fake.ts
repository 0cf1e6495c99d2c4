/**
 * A Standard Webhooks receiver at `POST /webhooks/<type>`: what a customer's endpoint for
 * aftercall's generic adapter (src/providers/webhook.ts) does.
 *
 * Each request must be signed with the sandbox's secret (`webhook-id`,
 * `webhook-timestamp` within five minutes of the real clock, `webhook-signature`),
 * checked with the `standardwebhooks` package: otherwise 401. Its body must be
 * aftercall's `{ type, idempotencyKey, conversationId, jobId, attempt, createdAt,
 * expiresAt, payload }` (400 naming the field otherwise; extra fields are allowed), and
 * `webhook-id` must be the percent-encoded ASCII form of `idempotencyKey` (400
 * otherwise): that is the key receivers deduplicate on.
 *
 * Every valid request is recorded, duplicates included: the receiver answers 200 `{}`
 * and leaves deduplication to whoever reads the log. The task type recorded is
 * `body.type` (the path segment is not checked against it). A terminal recipient (`payload.customer.email`
 * or `payload.customer.phone` listed) gets 422; a rate limit 429 with Retry-After;
 * server errors 500/503 as JSON, 502 as a gateway's HTML page.
 *
 * Each path is its own destination, `webhook:<type>` with the path segment as the type.
 * With a limit, the receiver answers the way an API gateway in front of it would: 429
 * with `retry-after`, and on every answer past the limiter `ratelimit-limit`,
 * `ratelimit-remaining`, `ratelimit-reset` and `ratelimit-policy` (`<limit>;w=<seconds>`,
 * draft 6), so a client can learn the window's length too. A path listed in `gone`
 * answers 410 Gone to everything, as a removed endpoint does.
 */
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { z } from 'zod';
import { toFieldIssues } from '../../src/contract/validation-error.js';
import type { DeliveryLog } from './delivery-log.js';
import type { ServerErrorStatus } from './faults.js';
import {
  decodeKey,
  flatHeaders,
  gatewayAnswer,
  headerValue,
  jsonAnswer,
  type Answer,
  type SandboxRequest,
} from './http.js';
import { destinationOf } from './destinations.js';
import type { Admission, ProviderFake } from './provider-pipeline.js';
import { describeLimit, type LimitDecision, rateLimitHeaders } from './rate-limits.js';

export const WEBHOOK_PATH = /^\/webhooks\/([^/]+)$/;

export interface WebhookFakeOptions {
  log: DeliveryLog;
  now: () => number;
  secret: string;
}

const isoWithOffset = z.iso.datetime({ offset: true, error: 'expected an ISO-8601 date-time with offset' });

export const webhookBodySchema = z.looseObject({
  type: z.string('expected the task type').min(1, 'expected the task type'),
  idempotencyKey: z.string('expected the idempotency key').min(1, 'expected the idempotency key'),
  conversationId: z.string('expected the conversation id'),
  jobId: z.string('expected the job id'),
  attempt: z
    .number('expected the attempt number')
    .int('expected a whole attempt number')
    .min(1, 'expected an attempt number from 1'),
  createdAt: isoWithOffset,
  expiresAt: isoWithOffset,
  payload: z.unknown(),
});

type WebhookBody = z.infer<typeof webhookBodySchema>;

interface WebhookAccepted {
  path: string;
  body: WebhookBody;
  email: string | null;
  phone: string | null;
}

/** `payload.customer.<field>` when it is a string. */
function customerField(payload: unknown, field: 'email' | 'phone'): string | null {
  if (!payload || typeof payload !== 'object') return null;
  const customer = (payload as { customer?: unknown }).customer;
  if (!customer || typeof customer !== 'object') return null;
  const value = (customer as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : null;
}

/** Draft 6 headers, with the policy (`3;w=1`) when the window is whole seconds. */
function webhookLimitHeaders(decision: LimitDecision): Record<string, string> {
  return {
    ...rateLimitHeaders(decision),
    ...(decision.windowMs % 1_000 === 0 && { 'ratelimit-policy': `${decision.limit};w=${decision.windowMs / 1_000}` }),
  };
}

export function createWebhookFake(options: WebhookFakeOptions): ProviderFake<WebhookAccepted> {
  const verifier = new Webhook(options.secret);

  return {
    provider: 'webhook',

    admit(request: SandboxRequest): Admission<WebhookAccepted> {
      const reject = (answer: Answer): Admission<WebhookAccepted> => ({ ok: false, answer });
      const raw = request.rawBody.toString('utf8');
      try {
        verifier.verify(raw, flatHeaders(request.headers));
      } catch (error) {
        return reject(jsonAnswer(401, { error: `invalid signature: ${(error as Error).message}` }));
      }
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return reject(jsonAnswer(400, { error: 'the body is not JSON' }));
      }
      const parsed = webhookBodySchema.safeParse(json);
      if (!parsed.success) {
        const issues = toFieldIssues(parsed.error.issues);
        return reject(
          jsonAnswer(400, {
            error: `invalid webhook body: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`,
            issues,
          }),
        );
      }
      const body = parsed.data;
      const webhookId = headerValue(request.headers, 'webhook-id') ?? '';
      if (decodeKey(webhookId) !== body.idempotencyKey) {
        return reject(
          jsonAnswer(400, { error: 'webhook-id: expected the percent-encoded ASCII form of idempotencyKey' }),
        );
      }
      return {
        ok: true,
        value: {
          path: request.path,
          body,
          email: customerField(body.payload, 'email'),
          phone: customerField(body.payload, 'phone'),
        },
      };
    },

    recipients: (accepted) => [accepted.email, accepted.phone],

    terminal: () =>
      jsonAnswer(422, { error: 'recipient rejected: the sandbox is configured to fail this recipient terminally' }),

    rateLimited: (retryAfterSeconds, decision) =>
      decision
        ? jsonAnswer(
            429,
            { error: `rate limit exceeded: ${describeLimit(decision.limit, decision.windowMs)}` },
            webhookLimitHeaders(decision),
          )
        : jsonAnswer(429, { error: 'rate limited' }, { 'retry-after': String(retryAfterSeconds) }),

    limitHeaders: webhookLimitHeaders,

    gone: () => jsonAnswer(410, { error: 'gone: this endpoint no longer accepts webhooks' }),

    idempotencyKeyOf: (request) => {
      const id = headerValue(request.headers, 'webhook-id');
      return id === undefined ? null : decodeKey(id);
    },

    serverError: (status: ServerErrorStatus) =>
      status === 502
        ? gatewayAnswer(502, 'Bad Gateway')
        : jsonAnswer(status, { error: status === 503 ? 'service unavailable' : 'internal server error' }),

    accept(accepted, arrivedAt) {
      return () => {
        const { body } = accepted;
        options.log.record({
          provider: 'webhook',
          destination: destinationOf('webhook', accepted.path),
          id: `rcpt_${randomUUID()}`,
          idempotencyKey: body.idempotencyKey,
          receivedAt: new Date(options.now()).toISOString(),
          arrivedAt: new Date(arrivedAt).toISOString(),
          expiresAt: body.expiresAt,
          type: body.type,
          to: accepted.email ?? accepted.phone,
          path: accepted.path,
          attempt: body.attempt,
        });
        return jsonAnswer(200, {});
      };
    },
  };
}
