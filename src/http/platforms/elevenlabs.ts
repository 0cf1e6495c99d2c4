/**
 * ElevenLabs: `POST /v1/platforms/elevenlabs`.
 *
 * Signature: `ElevenLabs-Signature: t=<unix s>,v0=<hex HMAC-SHA256(secret, t + "." + body)>`;
 * a timestamp older than 30 minutes is refused. This is the check of
 * `@elevenlabs/elevenlabs-js` `webhooks.constructEvent`, with one difference: `t` must be
 * digits (the SDK would sign a non-numeric one as text). Docs:
 * https://elevenlabs.io/docs/agents-platform/workflows/post-call-webhooks
 *
 * The event used is `post_call_transcription`: `{ type, event_timestamp, data }`, with
 * `data.conversation_id`, `data.metadata.start_time_unix_secs` and `call_duration_secs`,
 * `data.metadata.phone_call.external_number`, `data.analysis.transcript_summary` and
 * `data.analysis.data_collection_results.<id>.value`.
 */
import { at, header, record, type PlatformReceiver } from './platform.js';
import { hmacSha256Hex, safeEqual } from './signatures.js';

export const ELEVENLABS_MAX_AGE_MS = 30 * 60 * 1000;

export const elevenlabs: PlatformReceiver = {
  name: 'elevenlabs',
  endEvent: 'post_call_transcription',
  configured: (config) => config.elevenlabs.secret !== undefined,
  configuredBy: 'ELEVENLABS_WEBHOOK_SECRET',
  verify(request, config, now) {
    const secret = config.elevenlabs.secret;
    const value = header(request, 'elevenlabs-signature');
    if (!secret) return { ok: false, reason: 'ElevenLabs is not configured' };
    if (!value) return { ok: false, reason: 'missing ElevenLabs-Signature header' };
    const parts = value.split(',');
    const stamp = parts.find((part) => part.startsWith('t='))?.slice(2);
    const signature = parts.find((part) => part.startsWith('v0='));
    if (!stamp || !/^\d{1,15}$/.test(stamp) || !signature) {
      return { ok: false, reason: 'ElevenLabs-Signature: expected t=<unix seconds>,v0=<hex HMAC-SHA256>' };
    }
    if (Number(stamp) * 1000 < now - ELEVENLABS_MAX_AGE_MS) {
      return { ok: false, reason: 'ElevenLabs-Signature: timestamp older than 30 minutes' };
    }
    const expected = `v0=${hmacSha256Hex(secret, `${stamp}.`, request.body)}`;
    return safeEqual(expected, signature)
      ? { ok: true }
      : { ok: false, reason: 'ElevenLabs-Signature: signature does not match the body' };
  },
  eventOf: (payload) => {
    const type = at(payload, 'type');
    return typeof type === 'string' ? type : undefined;
  },
  callOf(payload) {
    const data = record(at(payload, 'data'));
    const start = at(data, 'metadata', 'start_time_unix_secs');
    const duration = at(data, 'metadata', 'call_duration_secs');
    const endedAt =
      typeof start === 'number' && typeof duration === 'number' && Number.isFinite(start + duration)
        ? (start + duration) * 1000
        : undefined;
    const fields: Record<string, unknown> = {};
    for (const [id, result] of Object.entries(record(at(data, 'analysis', 'data_collection_results')))) {
      fields[id] = at(result, 'value');
    }
    return {
      callId: data.conversation_id,
      endedAt,
      phone: at(data, 'metadata', 'phone_call', 'external_number'),
      summary: at(data, 'analysis', 'transcript_summary'),
      sentiment: undefined,
      fields,
      sources: {
        callId: 'data.conversation_id',
        endedAt: 'data.metadata.start_time_unix_secs + call_duration_secs',
        phone: 'data.metadata.phone_call.external_number',
        fields: 'data.analysis.data_collection_results.<id>.value',
      },
    };
  },
  signature: {
    headers: ['elevenlabs-signature'],
    description:
      'ElevenLabs-Signature: t=<unix s>,v0=<hex HMAC-SHA256(ELEVENLABS_WEBHOOK_SECRET, t + "." + body)>, at most 30 minutes old',
  },
};
