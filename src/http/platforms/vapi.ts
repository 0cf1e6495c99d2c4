/**
 * Vapi: `POST /v1/platforms/vapi`.
 *
 * Credentials, as picked in Vapi's custom credentials
 * (https://docs.vapi.ai/server-url/server-authentication):
 *   VAPI_WEBHOOK_SECRET  the request carries `X-Vapi-Secret: <secret>` or
 *                        `Authorization: Bearer <secret>`
 *   VAPI_HMAC_SECRET     `x-signature` holds the hex HMAC-SHA256 of `{timestamp}.{body}`
 *                        with the timestamp from `x-timestamp` (Vapi's HMAC defaults; both
 *                        header names can be changed there, and here with
 *                        VAPI_HMAC_SIGNATURE_HEADER / VAPI_HMAC_TIMESTAMP_HEADER). A
 *                        `sha256=` prefix is accepted. The timestamp (seconds, milliseconds
 *                        or ISO-8601) must be within 5 minutes of now.
 * With both set, either credential is accepted.
 *
 * The event used is `end-of-call-report` (https://docs.vapi.ai/server-url/end-of-call-report):
 * `{ message: { type, endedAt, call: { id }, customer: { number }, analysis: { summary,
 * structuredData } } }`.
 */
import { at, header, record, type PlatformReceiver, type SignedRequest } from './platform.js';
import { hmacSha256Hex, safeEqual } from './signatures.js';

export const VAPI_TOLERANCE_MS = 5 * 60 * 1000;

function timestampMs(text: string): number | undefined {
  if (/^\d{1,16}$/.test(text)) {
    const value = Number(text);
    return value >= 1e12 ? value : value * 1000;
  }
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed;
}

function checkSecret(request: SignedRequest, secret: string): boolean {
  const given = header(request, 'x-vapi-secret');
  const authorization = header(request, 'authorization');
  const bearer = authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : undefined;
  // Both compared, whatever the first gave, so timing does not tell which header was tried.
  const bySecret = given !== undefined && safeEqual(given, secret);
  const byBearer = bearer !== undefined && safeEqual(bearer, secret);
  return bySecret || byBearer;
}

export const vapi: PlatformReceiver = {
  name: 'vapi',
  endEvent: 'end-of-call-report',
  configured: (config) => config.vapi.secret !== undefined || config.vapi.hmacSecret !== undefined,
  configuredBy: 'VAPI_WEBHOOK_SECRET or VAPI_HMAC_SECRET',
  verify(request, config, now) {
    const { secret, hmacSecret, signatureHeader, timestampHeader } = config.vapi;
    if (!secret && !hmacSecret) return { ok: false, reason: 'Vapi is not configured' };
    if (secret && checkSecret(request, secret)) return { ok: true };
    if (hmacSecret) {
      const signature = header(request, signatureHeader);
      const stamp = header(request, timestampHeader);
      if (signature && stamp) {
        const ms = timestampMs(stamp.trim());
        if (ms === undefined || Math.abs(now - ms) > VAPI_TOLERANCE_MS) {
          return { ok: false, reason: `${timestampHeader}: timestamp outside the 5-minute tolerance` };
        }
        const given = signature
          .trim()
          .replace(/^sha256=/, '')
          .toLowerCase();
        const expected = hmacSha256Hex(hmacSecret, `${stamp}.`, request.body);
        if (safeEqual(expected, given)) return { ok: true };
        return { ok: false, reason: `${signatureHeader}: signature does not match the body` };
      }
    }
    return {
      ok: false,
      reason: hmacSecret
        ? `missing or wrong credential: expected ${signatureHeader} and ${timestampHeader}${secret ? ', or X-Vapi-Secret' : ''}`
        : 'missing or wrong X-Vapi-Secret (or Authorization: Bearer) credential',
    };
  },
  eventOf: (payload) => {
    const type = at(payload, 'message', 'type');
    return typeof type === 'string' ? type : undefined;
  },
  callOf(payload) {
    const message = record(at(payload, 'message'));
    const ended = typeof message.endedAt === 'string' ? Date.parse(message.endedAt) : Number.NaN;
    const customerNumber = at(message, 'customer', 'number');
    return {
      callId: at(message, 'call', 'id'),
      endedAt: Number.isNaN(ended) ? undefined : ended,
      phone: customerNumber ?? at(message, 'call', 'customer', 'number'),
      summary: at(message, 'analysis', 'summary'),
      sentiment: undefined,
      fields: record(at(message, 'analysis', 'structuredData')),
      sources: {
        callId: 'message.call.id',
        endedAt: 'message.endedAt',
        phone: 'message.customer.number',
        fields: 'message.analysis.structuredData',
      },
    };
  },
  signature: {
    headers: ['x-vapi-secret', 'authorization', 'x-signature', 'x-timestamp'],
    description:
      'VAPI_WEBHOOK_SECRET: X-Vapi-Secret or Authorization: Bearer; VAPI_HMAC_SECRET: x-signature = hex HMAC-SHA256 of {x-timestamp}.{body}, within 5 minutes',
  },
};
