/**
 * The HMAC and comparison primitives the receivers share, on node:crypto. Comparisons are
 * constant-time over SHA-256 digests of both sides, so neither the content nor the length
 * of a secret or signature leaks through timing.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Hex HMAC-SHA256 of the parts, in order, with `secret` as the key. */
export function hmacSha256Hex(secret: string, ...parts: (Buffer | string)[]): string {
  const hmac = createHmac('sha256', secret);
  for (const part of parts) hmac.update(part);
  return hmac.digest('hex');
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Constant-time equality of two strings, whatever their lengths. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}
