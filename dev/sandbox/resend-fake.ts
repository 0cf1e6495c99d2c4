/**
 * A stateful fake of Resend's `POST /emails`, as the `resend` SDK calls it (the SDK takes
 * the sandbox's URL from RESEND_BASE_URL or its `baseUrl` option).
 *
 * Authentication: `Authorization: Bearer <key>`. No key: 401 `missing_api_key`. The key
 * `re_invalid` (or, when the sandbox was given a key, any other key): 403
 * `invalid_api_key`, as Resend documents it.
 *
 * Body: the spec's SendEmailRequest. Missing `from`, `to` or `subject`, or none of
 * `html`, `text` and `template`: 422 `validation_error` naming the field. aftercall's
 * headers ride in the e-mail's own `headers` field: `X-Aftercall-Expires-At` (ISO-8601
 * with offset; anything else is a 422 naming it) and `X-Aftercall-Type`.
 *
 * Idempotency (`Idempotency-Key` header, 1 to 256 characters, else 400
 * `invalid_idempotency_key`): remembered for 24 hours of the sandbox's clock from the
 * moment the request is accepted.
 *   - the same key with the same body: the first answer again, no second e-mail;
 *   - the same key with a different body: 409 `invalid_idempotent_request`;
 *   - the same key while the first request is still being processed: 409
 *     `concurrent_idempotent_requests` (a retry later gets the first answer).
 * A request that was answered with an error (validation, terminal, 429, 5xx) leaves no
 * memory, so its retry is processed afresh. A hung request was processed: its key is
 * remembered and a retry gets its answer.
 *
 * Errors have Resend's shape `{ statusCode, name, message }`. A terminal recipient gets
 * 422 `validation_error` (Resend's answer to an address it will not send to); a rate
 * limit 429 `rate_limit_exceeded` ("Too many requests. You can only make 2 requests per
 * second. ...", as Resend words it) with `retry-after` and `ratelimit-*` headers; server
 * errors 500 `internal_server_error`, 503 `application_error`, or a gateway's HTML 502.
 * Success: 200 `{ "id": "<uuid>" }`. When the sandbox gives Resend a limit, every answer
 * past the limiter carries `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset`,
 * successful ones too, as Resend's do (its documentation: "following every request").
 */
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { DeliveryLog } from './delivery-log.js';
import type { ServerErrorStatus } from './faults.js';
import { decodeKey, gatewayAnswer, headerValue, jsonAnswer, type Answer, type SandboxRequest } from './http.js';
import type { Admission, ProviderFake } from './provider-pipeline.js';
import { describeLimit, rateLimitHeaders } from './rate-limits.js';

export const RESEND_INVALID_API_KEY = 're_invalid';
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;
const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

export interface ResendFakeOptions {
  log: DeliveryLog;
  now: () => number;
  /** When set, the only key accepted. */
  apiKey?: string;
}

const addresses = z.union(
  [z.string().min(1), z.array(z.string().min(1)).min(1).max(50)],
  'expected an e-mail address or a list of 1 to 50',
);

const sendEmailSchema = z.looseObject({
  from: z.string('expected a sender address').min(1, 'expected a sender address'),
  to: addresses,
  subject: z.string('expected a string'),
  html: z.string('expected a string').optional(),
  text: z.string('expected a string').optional(),
  template: z.looseObject({ id: z.string().min(1) }).optional(),
  headers: z
    .record(z.string(), z.string('expected string header values'), 'expected an object of header names to strings')
    .optional(),
  cc: addresses.optional(),
  bcc: addresses.optional(),
  reply_to: addresses.optional(),
});

const isoWithOffset = z.iso.datetime({ offset: true });

interface ResendAccepted {
  rawKey: string | null;
  fingerprint: string;
  email: z.infer<typeof sendEmailSchema>;
  expiresAt: string | null;
  type: string | null;
  attempt: number | undefined;
}

type Memory =
  | { state: 'in_flight'; fingerprint: string; until: number }
  | { state: 'done'; fingerprint: string; until: number; answer: Answer };

const resendError = (status: number, name: string, message: string, headers: Record<string, string> = {}) =>
  jsonAnswer(status, { statusCode: status, name, message }, headers);

/** The value of an e-mail header, case-insensitively. */
function emailHeader(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === wanted) return value;
  return undefined;
}

/** JSON with object keys sorted, so two bodies that differ only in key order compare equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function validationMessage(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const field = issue.path.map(String).join('.') || 'body';
      const missing = issue.code === 'invalid_type' && 'input' in issue && issue.input === undefined;
      return missing ? `Missing \`${field}\` field.` : `Invalid \`${field}\` field: ${issue.message}.`;
    })
    .join(' ');
}

export function createResendFake(options: ResendFakeOptions): ProviderFake<ResendAccepted> {
  const memory = new Map<string, Memory>();

  const remembered = (key: string): Memory | undefined => {
    const entry = memory.get(key);
    if (entry && entry.until <= options.now()) {
      memory.delete(key);
      return undefined;
    }
    return entry;
  };

  return {
    provider: 'resend',

    admit(request: SandboxRequest): Admission<ResendAccepted> {
      const reject = (answer: Answer): Admission<ResendAccepted> => ({ ok: false, answer });
      const authorization = headerValue(request.headers, 'authorization') ?? '';
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!bearer) {
        return reject(
          resendError(
            401,
            'missing_api_key',
            'Missing API key in the authorization header. Include the header `Authorization: Bearer YOUR_API_KEY`.',
          ),
        );
      }
      const apiKey = bearer[1]!;
      if (apiKey === RESEND_INVALID_API_KEY || (options.apiKey !== undefined && apiKey !== options.apiKey)) {
        return reject(resendError(403, 'invalid_api_key', 'API key is invalid.'));
      }

      const rawKey = headerValue(request.headers, 'idempotency-key') ?? null;
      if (rawKey !== null && (rawKey.length < 1 || rawKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)) {
        return reject(
          resendError(
            400,
            'invalid_idempotency_key',
            `The Idempotency-Key must be between 1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters (got ${rawKey.length}).`,
          ),
        );
      }

      let body: unknown;
      try {
        body = JSON.parse(request.rawBody.toString('utf8'));
      } catch {
        return reject(resendError(422, 'validation_error', 'Invalid JSON body.'));
      }
      const parsed = sendEmailSchema.safeParse(body);
      if (!parsed.success) return reject(resendError(422, 'validation_error', validationMessage(parsed.error.issues)));
      const email = parsed.data;
      if (email.html === undefined && email.text === undefined && email.template === undefined) {
        return reject(resendError(422, 'validation_error', 'Missing `html` or `text` field.'));
      }

      const expiresAt = emailHeader(email.headers, 'X-Aftercall-Expires-At') ?? null;
      if (expiresAt !== null && !isoWithOffset.safeParse(expiresAt).success) {
        return reject(
          resendError(
            422,
            'validation_error',
            'Invalid `headers.X-Aftercall-Expires-At` field: expected an ISO-8601 date-time with offset.',
          ),
        );
      }
      const attemptText =
        emailHeader(email.headers, 'X-Aftercall-Attempt') ?? headerValue(request.headers, 'x-aftercall-attempt');
      const attempt = attemptText !== undefined && /^\d+$/.test(attemptText) ? Number(attemptText) : undefined;
      return {
        ok: true,
        value: {
          rawKey,
          fingerprint: createHash('sha256').update(canonicalJson(body)).digest('hex'),
          email,
          expiresAt,
          type:
            emailHeader(email.headers, 'X-Aftercall-Type') ?? headerValue(request.headers, 'x-aftercall-type') ?? null,
          attempt,
        },
      };
    },

    recipients: (accepted) => (Array.isArray(accepted.email.to) ? accepted.email.to : [accepted.email.to]),

    terminal: () =>
      resendError(422, 'validation_error', 'Invalid `to` field: the sandbox is configured to reject this recipient.'),

    rateLimited: (retryAfterSeconds, decision) =>
      resendError(
        429,
        'rate_limit_exceeded',
        `Too many requests. You can only make ${describeLimit(decision?.limit ?? 2, decision?.windowMs ?? 1_000)}. ` +
          'See rate limit response headers for more information. Or contact support to increase rate limit.',
        decision
          ? rateLimitHeaders(decision)
          : {
              // Drawn by chance: Resend's default limit, used up.
              'retry-after': String(retryAfterSeconds),
              'ratelimit-limit': '2',
              'ratelimit-remaining': '0',
              'ratelimit-reset': String(retryAfterSeconds),
            },
      ),

    limitHeaders: rateLimitHeaders,

    idempotencyKeyOf: (request) => {
      const key = headerValue(request.headers, 'idempotency-key');
      return key === undefined ? null : decodeKey(key);
    },

    serverError: (status: ServerErrorStatus) =>
      status === 502
        ? gatewayAnswer(502, 'Bad Gateway')
        : status === 503
          ? resendError(503, 'application_error', 'The service is unavailable right now; try again later.')
          : resendError(500, 'internal_server_error', 'An unexpected error occurred.'),

    accept(accepted, arrivedAt) {
      const { rawKey, fingerprint } = accepted;
      if (rawKey !== null) {
        const entry = remembered(rawKey);
        if (entry?.state === 'in_flight') {
          return () =>
            resendError(
              409,
              'concurrent_idempotent_requests',
              'Same idempotency key used while original request is still in progress.',
            );
        }
        if (entry && entry.fingerprint !== fingerprint) {
          return () =>
            resendError(
              409,
              'invalid_idempotent_request',
              'Same idempotency key used with a different request payload.',
            );
        }
        if (entry?.state === 'done') return () => entry.answer;
        memory.set(rawKey, { state: 'in_flight', fingerprint, until: options.now() + IDEMPOTENCY_WINDOW_MS });
      }
      return () => {
        const id = randomUUID();
        const { email } = accepted;
        options.log.record({
          provider: 'resend',
          destination: 'resend',
          id,
          idempotencyKey: rawKey === null ? null : decodeKey(rawKey),
          receivedAt: new Date(options.now()).toISOString(),
          arrivedAt: new Date(arrivedAt).toISOString(),
          expiresAt: accepted.expiresAt,
          type: accepted.type,
          to: Array.isArray(email.to) ? email.to.join(', ') : email.to,
          subject: email.subject,
          ...(email.text !== undefined && { text: email.text }),
          ...(email.html !== undefined && { html: email.html }),
          ...(accepted.attempt !== undefined && { attempt: accepted.attempt }),
        });
        const answer = jsonAnswer(200, { id });
        if (rawKey !== null)
          memory.set(rawKey, { state: 'done', fingerprint, until: options.now() + IDEMPOTENCY_WINDOW_MS, answer });
        return answer;
      };
    },

    reset: () => memory.clear(),
  };
}
