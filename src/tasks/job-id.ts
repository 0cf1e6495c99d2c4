/**
 * Idempotency keys and the job ids derived from them.
 *
 * The idempotency key names one unit of follow-up work: `conversationId:type` for work
 * that belongs to a conversation, and `booking:<bookingId>@<startsAt>:schedule_reminder`
 * for a reminder, which belongs to the booking and its appointment time. The same key
 * is the BullMQ job id (encoded) and goes to every provider as its idempotency key, so a
 * repeated outcome never doubles the work.
 *
 * BullMQ refuses `:` in custom job ids (and ids that look like integers), so the job id
 * is an injective encoding of the key: `%` becomes `%25` and `:` becomes `%3A`, nothing
 * else changes. Decoding is unambiguous, so two different keys never share a job id.
 * Every key contains `:`, so every job id contains `%3A` and is never an integer, and
 * never equals a BullMQ key suffix (`wait`, `delayed`, ...) or one of aftercall's own
 * (`expiry`, `scope:...`), which share the queue's key space.
 */
import { createHash } from 'node:crypto';

export function conversationTaskKey(conversationId: string, type: string): string {
  return `${conversationId}:${type}`;
}

/** The booking-owned key of a reminder: a new appointment time is a new delivery. */
export function bookingTaskKey(bookingId: string, startsAt: number, type: string): string {
  return `booking:${bookingId}@${new Date(startsAt).toISOString()}:${type}`;
}

/** Encodes any string into a part of a Redis key or job id that contains no `:`. */
export function encodeKeyPart(text: string): string {
  return text.replace(/[%:]/g, (char) => (char === '%' ? '%25' : '%3A'));
}

export function decodeKeyPart(encoded: string): string {
  return encoded.replace(/%25|%3A/g, (seq) => (seq === '%25' ? '%' : ':'));
}

export function jobIdFor(idempotencyKey: string): string {
  return encodeKeyPart(idempotencyKey);
}

export function idempotencyKeyOf(jobId: string): string {
  return decodeKeyPart(jobId);
}

/**
 * The ASCII form of a key, for HTTP headers (Standard Webhooks' `webhook-id`): every
 * UTF-8 byte outside printable ASCII `!`..`~`, and `%` itself, is percent-encoded
 * (`%XX`, upper-case hex). A key that is already printable ASCII without `%` travels
 * unchanged. Injective, and `decodeURIComponent` reverses it.
 */
export function asciiKey(key: string): string {
  let out = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    out +=
      byte > 0x20 && byte < 0x7f && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The idempotency key as a provider receives it: its ASCII form, or, when that is longer
 * than the provider allows (Resend: 256), `sha256:` and the hex digest of the key, which
 * is just as stable and unique.
 */
export function providerIdempotencyKey(key: string, maxLength = 256): string {
  const ascii = asciiKey(key);
  return ascii.length <= maxLength ? ascii : `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}
