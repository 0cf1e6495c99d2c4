/**
 * Retell: `POST /v1/platforms/retell`.
 *
 * Signature: `x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256(RETELL_API_KEY, body + ms)>`,
 * accepted within 5 minutes either side of now; what retell-sdk's `verify` checks
 * (https://docs.retellai.com/features/secure-webhook). The event that ends a call with its
 * analysis is `call_analyzed` (https://docs.retellai.com/features/webhook-overview); the
 * payload is `{ event, call }` with the call object of the get-call API: `call_id`,
 * `end_timestamp` (ms), `from_number`, `to_number`, `direction`, and `call_analysis` with
 * `call_summary`, `user_sentiment` and `custom_analysis_data`.
 */
import { at, header, record, type PlatformReceiver } from './platform.js';
import { hmacSha256Hex, safeEqual } from './signatures.js';

export const RETELL_TOLERANCE_MS = 5 * 60 * 1000;
const SIGNATURE = /^v=(\d+),d=([0-9a-fA-F]{64})$/;

export const retell: PlatformReceiver = {
  name: 'retell',
  endEvent: 'call_analyzed',
  configured: (config) => config.retell.apiKey !== undefined,
  configuredBy: 'RETELL_API_KEY',
  verify(request, config, now) {
    const apiKey = config.retell.apiKey;
    const value = header(request, 'x-retell-signature');
    if (!apiKey) return { ok: false, reason: 'Retell is not configured' };
    if (!value) return { ok: false, reason: 'missing x-retell-signature header' };
    const match = SIGNATURE.exec(value.trim());
    if (!match) return { ok: false, reason: 'x-retell-signature: expected v=<unix ms>,d=<hex HMAC-SHA256>' };
    const stamp = Number(match[1]);
    if (!Number.isSafeInteger(stamp) || Math.abs(now - stamp) > RETELL_TOLERANCE_MS) {
      return { ok: false, reason: 'x-retell-signature: timestamp outside the 5-minute tolerance' };
    }
    const expected = hmacSha256Hex(apiKey, request.body, match[1]!);
    return safeEqual(expected, match[2]!.toLowerCase())
      ? { ok: true }
      : { ok: false, reason: 'x-retell-signature: signature does not match the body' };
  },
  eventOf: (payload) => {
    const event = at(payload, 'event') ?? at(payload, 'event_type');
    return typeof event === 'string' ? event : undefined;
  },
  callOf(payload) {
    const call = record(at(payload, 'call'));
    const end = call.end_timestamp;
    const outbound = call.direction === 'outbound';
    return {
      callId: call.call_id,
      endedAt: typeof end === 'number' && Number.isFinite(end) ? end : undefined,
      phone: outbound ? call.to_number : call.from_number,
      summary: at(call, 'call_analysis', 'call_summary'),
      sentiment: at(call, 'call_analysis', 'user_sentiment'),
      fields: record(at(call, 'call_analysis', 'custom_analysis_data')),
      sources: {
        callId: 'call.call_id',
        endedAt: 'call.end_timestamp',
        phone: outbound ? 'call.to_number' : 'call.from_number',
        fields: 'call.call_analysis.custom_analysis_data',
      },
    };
  },
  signature: {
    headers: ['x-retell-signature'],
    description: 'x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256(RETELL_API_KEY, body + ms)>, within 5 minutes',
  },
};
