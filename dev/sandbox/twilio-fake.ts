/**
 * A stateful fake of Twilio's `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
 * (operation CreateMessage of the 2010-04-01 API), as the `twilio` SDK sends it: form
 * encoded (`To`, `From` or `MessagingServiceSid`, `Body`, ...), HTTP Basic auth.
 *
 * Authentication: `AccountSid:AuthToken` (or an API key `SK...:secret`). Missing or
 * malformed credentials, a username that is an account SID other than the one in the
 * path, the token `invalid`, or (when the sandbox was given one) any other token: 401
 * with code 20003. An AccountSid in the path that is not `AC` + 32 hex digits: 404 code
 * 20404.
 *
 * Body checks, with Twilio's codes: no `To` 21604; neither `From` nor
 * `MessagingServiceSid` 21603; a malformed `MessagingServiceSid` 21701; none of `Body`,
 * `MediaUrl`, `ContentSid` 21602; a `Body` over 1,600 characters 21617; a `To` that is
 * neither E.164 nor a channel address (`whatsapp:+1...`) 21211.
 *
 * Twilio has no idempotency: every accepted request is a new message with a new SID, so
 * a retried send shows as a duplicate in the delivery log. aftercall's own headers are
 * recorded: `X-Aftercall-Idempotency-Key` (percent-encoded ASCII, decoded here),
 * `X-Aftercall-Expires-At` (ISO-8601 with offset; anything else is a 400 code 20001
 * naming it) and `X-Aftercall-Type`; the attempt comes from the `Attempt` form field or
 * `X-Aftercall-Attempt`.
 *
 * `GET .../Messages.json` lists the messages sent so far, newest first, filtered by `To`
 * and `From` (Twilio's list operation, paged as Twilio pages it): the Twilio adapter
 * uses it to find out whether a send whose answer never came back did create a message.
 *
 * Errors have Twilio's shape `{ code, message, more_info, status }`. A terminal recipient
 * gets 400 code 21211 (invalid 'To' number), the one kind of terminal error the sandbox
 * produces; a rate limit 429 code 20429 ("Too Many Requests") with Retry-After, and no
 * `ratelimit-*` headers (Twilio states no limit); server errors 500 code 20500, 503 code
 * 20503, or a gateway's HTML 502. Success: 201 with the Message resource (`sid` SM + 32
 * hex, status `queued`, RFC 2822 dates), as the spec's example.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { DeliveryLog } from './delivery-log.js';
import type { ServerErrorStatus } from './faults.js';
import { decodeKey, gatewayAnswer, headerValue, jsonAnswer, type Answer, type SandboxRequest } from './http.js';
import type { Admission, ProviderFake } from './provider-pipeline.js';

export const TWILIO_MESSAGES_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;
export const TWILIO_INVALID_AUTH_TOKEN = 'invalid';
const ACCOUNT_SID = /^AC[0-9a-fA-F]{32}$/;
const MESSAGING_SERVICE_SID = /^MG[0-9a-fA-F]{32}$/;
const E164 = /^\+[1-9]\d{1,14}$/;
const CHANNEL_ADDRESS = /^[a-z]+:\S+$/;
const MAX_BODY_CHARACTERS = 1600;

export interface TwilioFakeOptions {
  log: DeliveryLog;
  now: () => number;
  /** When set, the only auth token (or API key secret) accepted. */
  authToken?: string;
}

interface TwilioAccepted {
  accountSid: string;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  mediaCount: number;
  idempotencyKey: string | null;
  expiresAt: string | null;
  type: string | null;
  attempt: number | undefined;
}

const isoWithOffset = z.iso.datetime({ offset: true });

export const twilioError = (
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): Answer =>
  jsonAnswer(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }, headers);

/** Twilio's date format: RFC 2822 with a numeric offset, `Thu, 24 Aug 2023 05:01:45 +0000`. */
export function rfc2822(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/** Segments of an SMS: GSM-7 text fits 160 characters in one (153 per part when split), anything else 70 (67). */
function segments(body: string): number {
  if (!body) return 0;
  const gsm = /^[A-Za-z0-9 \r\n@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!"#¤%&'()*+,\-./:;<=>?¡ÄÖÑÜ§¿äöñüà^{}\\[~\]|€]*$/.test(
    body,
  );
  const length = [...body].length;
  const [single, part] = gsm ? [160, 153] : [70, 67];
  return length <= single ? 1 : Math.ceil(length / part);
}

function basicCredentials(authorization: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon === decoded.length - 1) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The list operation: messages recorded in the log, newest first, filtered by To and From. */
export function listTwilioMessages(log: DeliveryLog, request: SandboxRequest): Answer {
  const accountSid = decodeKey(TWILIO_MESSAGES_PATH.exec(request.path)?.[1] ?? '');
  if (!ACCOUNT_SID.test(accountSid))
    return twilioError(404, 20404, `The requested resource ${request.path} was not found`);
  if (!basicCredentials(headerValue(request.headers, 'authorization'))) {
    return twilioError(401, 20003, 'Authenticate', { 'www-authenticate': 'Basic realm="Twilio API"' });
  }
  const to = request.query.get('To');
  const from = request.query.get('From');
  const pageSize = Math.min(1000, Math.max(1, Number(request.query.get('PageSize') ?? 50) || 50));
  const messages = log
    .list({ provider: 'twilio' })
    .filter((delivery) => (!to || delivery.to === to) && (!from || delivery.from === from))
    .reverse()
    .slice(0, pageSize)
    .map((delivery) => ({
      account_sid: accountSid,
      api_version: '2010-04-01',
      body: delivery.body ?? '',
      date_created: rfc2822(Date.parse(delivery.receivedAt)),
      date_sent: null,
      date_updated: rfc2822(Date.parse(delivery.receivedAt)),
      direction: 'outbound-api',
      from: delivery.from ?? null,
      sid: delivery.id,
      status: 'queued',
      to: delivery.to,
      uri: `/2010-04-01/Accounts/${accountSid}/Messages/${delivery.id}.json`,
    }));
  const uri = `/2010-04-01/Accounts/${accountSid}/Messages.json?PageSize=${pageSize}&Page=0`;
  return jsonAnswer(200, {
    messages,
    end: Math.max(0, messages.length - 1),
    first_page_uri: uri,
    next_page_uri: null,
    page: 0,
    page_size: pageSize,
    previous_page_uri: null,
    start: 0,
    uri,
  });
}

export function createTwilioFake(options: TwilioFakeOptions): ProviderFake<TwilioAccepted> {
  return {
    provider: 'twilio',

    admit(request: SandboxRequest): Admission<TwilioAccepted> {
      const reject = (answer: Answer): Admission<TwilioAccepted> => ({ ok: false, answer });
      const accountSid = decodeKey(TWILIO_MESSAGES_PATH.exec(request.path)?.[1] ?? '');
      const credentials = basicCredentials(headerValue(request.headers, 'authorization'));
      const authenticated =
        credentials !== undefined &&
        (credentials.username.startsWith('SK') || credentials.username === accountSid) &&
        credentials.password !== TWILIO_INVALID_AUTH_TOKEN &&
        (options.authToken === undefined || credentials.password === options.authToken);
      if (!authenticated)
        return reject(twilioError(401, 20003, 'Authenticate', { 'www-authenticate': 'Basic realm="Twilio API"' }));
      if (!ACCOUNT_SID.test(accountSid)) {
        return reject(twilioError(404, 20404, `The requested resource ${request.path} was not found`));
      }

      const form = /application\/x-www-form-urlencoded/i.test(headerValue(request.headers, 'content-type') ?? '')
        ? new URLSearchParams(request.rawBody.toString('utf8'))
        : new URLSearchParams();
      const to = form.get('To');
      const from = form.get('From');
      const messagingServiceSid = form.get('MessagingServiceSid');
      const body = form.get('Body') ?? '';
      const mediaCount = form.getAll('MediaUrl').length;
      if (!to) return reject(twilioError(400, 21604, "A 'To' phone number is required."));
      if (!from && !messagingServiceSid) return reject(twilioError(400, 21603, "A 'From' phone number is required."));
      if (messagingServiceSid && !MESSAGING_SERVICE_SID.test(messagingServiceSid)) {
        return reject(twilioError(400, 21701, 'The Messaging Service Sid is invalid.'));
      }
      if (!body && !mediaCount && !form.get('ContentSid'))
        return reject(twilioError(400, 21602, 'Message body is required.'));
      if ([...body].length > MAX_BODY_CHARACTERS) {
        return reject(
          twilioError(400, 21617, `The concatenated message body exceeds the ${MAX_BODY_CHARACTERS} character limit.`),
        );
      }
      if (!E164.test(to) && !CHANNEL_ADDRESS.test(to))
        return reject(twilioError(400, 21211, "Invalid 'To' Phone Number"));

      const expiresAt = headerValue(request.headers, 'x-aftercall-expires-at') ?? null;
      if (expiresAt !== null && !isoWithOffset.safeParse(expiresAt).success) {
        return reject(
          twilioError(400, 20001, 'Invalid header X-Aftercall-Expires-At: expected an ISO-8601 date-time with offset'),
        );
      }
      const key = headerValue(request.headers, 'x-aftercall-idempotency-key');
      const attemptText = form.get('Attempt') ?? headerValue(request.headers, 'x-aftercall-attempt');
      return {
        ok: true,
        value: {
          accountSid,
          to,
          from: from || null,
          messagingServiceSid: messagingServiceSid || null,
          body,
          mediaCount,
          idempotencyKey: key === undefined ? null : decodeKey(key),
          expiresAt,
          type: headerValue(request.headers, 'x-aftercall-type') ?? null,
          attempt:
            attemptText !== undefined && attemptText !== null && /^\d+$/.test(attemptText)
              ? Number(attemptText)
              : undefined,
        },
      };
    },

    recipients: (accepted) => [accepted.to],

    terminal: () => twilioError(400, 21211, "Invalid 'To' Phone Number"),

    rateLimited: (retryAfterSeconds) =>
      twilioError(429, 20429, 'Too Many Requests', { 'retry-after': String(retryAfterSeconds) }),

    idempotencyKeyOf: (request) => {
      const key = headerValue(request.headers, 'x-aftercall-idempotency-key');
      return key === undefined ? null : decodeKey(key);
    },

    serverError: (status: ServerErrorStatus) =>
      status === 502
        ? gatewayAnswer(502, 'Bad Gateway')
        : status === 503
          ? twilioError(503, 20503, 'Service Unavailable')
          : twilioError(500, 20500, 'Internal Server Error'),

    accept(accepted, arrivedAt) {
      return () => {
        const sid = `SM${randomBytes(16).toString('hex')}`;
        const now = options.now();
        const uri = `/2010-04-01/Accounts/${accepted.accountSid}/Messages/${sid}.json`;
        options.log.record({
          provider: 'twilio',
          destination: 'twilio',
          id: sid,
          idempotencyKey: accepted.idempotencyKey,
          receivedAt: new Date(now).toISOString(),
          arrivedAt: new Date(arrivedAt).toISOString(),
          expiresAt: accepted.expiresAt,
          type: accepted.type,
          to: accepted.to,
          ...(accepted.from && { from: accepted.from }),
          body: accepted.body,
          ...(accepted.attempt !== undefined && { attempt: accepted.attempt }),
        });
        return jsonAnswer(
          201,
          {
            account_sid: accepted.accountSid,
            api_version: '2010-04-01',
            body: accepted.body,
            date_created: rfc2822(now),
            date_sent: null,
            date_updated: rfc2822(now),
            direction: 'outbound-api',
            error_code: null,
            error_message: null,
            from: accepted.from,
            messaging_service_sid: accepted.messagingServiceSid,
            num_media: String(accepted.mediaCount),
            num_segments: String(segments(accepted.body)),
            price: null,
            price_unit: 'USD',
            sid,
            status: 'queued',
            subresource_uris: { media: `/2010-04-01/Accounts/${accepted.accountSid}/Messages/${sid}/Media.json` },
            to: accepted.to,
            uri,
          },
          { 'twilio-request-id': `RQ${randomBytes(16).toString('hex')}` },
        );
      };
    },
  };
}
