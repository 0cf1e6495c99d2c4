/**
 * Console sessions: how a browser, which cannot send a Bearer header when it navigates,
 * holds one of the server's API keys.
 *
 * Lifecycle:
 *   1. The operator pastes a token of API_KEYS into the login page. It is checked with the
 *      API's own authenticator (constant time, ../auth.ts); it is never logged or stored.
 *   2. The server answers with a cookie holding a signed session, not the token:
 *        base64url(JSON { k, e, n }) "." base64url(HMAC-SHA256(signing key, payload))
 *      k  the key's fingerprint (HMAC of the token under the signing key: not reversible),
 *      e  when the session ends (epoch ms, SESSION_TTL_MS after login),
 *      n  a random nonce; the session's CSRF token is HMAC(signing key, "csrf" + n).
 *      The cookie is HttpOnly, SameSite=Strict, Path=/console, Secure over https.
 *   3. Each request verifies the signature (constant time) and the expiry, then looks the
 *      fingerprint up among the keys configured now: the roles come from API_KEYS at that
 *      moment, so a key removed from API_KEYS ends its sessions at once.
 *   4. Logout clears the cookie. The session itself is stateless: a copied cookie stays
 *      valid until `e`; changing API_KEYS (any key) ends every session, because the
 *      signing key is derived from all configured tokens. Every server behind a load
 *      balancer with the same API_KEYS accepts the same sessions.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKey, ApiRole } from '../environment.js';

export const SESSION_COOKIE = 'aftercall_console';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const COOKIE_PATH = '/console';

export interface ConsoleSession {
  roles: ReadonlySet<ApiRole>;
  expiresAt: number;
  /** The value every form of this session posts as `_csrf`. */
  csrfToken: string;
}

export interface SessionCodec {
  /** A cookie value for a token already authenticated as holding `roles`. */
  issue(token: string, now: number): string;
  /** The session a cookie value holds; undefined when forged, expired, or its key is gone. */
  read(cookie: string | undefined, now: number): ConsoleSession | undefined;
  /** Whether `presented` is the CSRF token of `session` (constant time). */
  checkCsrf(session: ConsoleSession, presented: unknown): boolean;
}

const b64 = (buffer: Buffer) => buffer.toString('base64url');

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function createSessionCodec(keys: readonly ApiKey[]): SessionCodec {
  const signingKey = createHash('sha256')
    .update('aftercall-console-session-v1')
    .update(
      keys
        .map((key) => `${key.role}:${key.token}`)
        .sort()
        .join('\0'),
    )
    .digest();
  const mac = (text: string) => createHmac('sha256', signingKey).update(text, 'utf8').digest();
  const fingerprint = (token: string) => b64(mac(`key\0${token}`).subarray(0, 18));
  const rolesByFingerprint = new Map<string, Set<ApiRole>>();
  for (const key of keys) {
    const id = fingerprint(key.token);
    rolesByFingerprint.set(id, new Set([...(rolesByFingerprint.get(id) ?? []), key.role]));
  }
  const csrfOf = (nonce: string) => b64(mac(`csrf\0${nonce}`));

  return {
    issue(token, now) {
      const payload = b64(
        Buffer.from(JSON.stringify({ k: fingerprint(token), e: now + SESSION_TTL_MS, n: b64(randomBytes(16)) })),
      );
      return `${payload}.${b64(mac(payload))}`;
    },
    read(cookie, now) {
      if (!cookie) return undefined;
      const [payload, signature, extra] = cookie.split('.');
      if (!payload || !signature || extra !== undefined) return undefined;
      if (!equal(Buffer.from(signature, 'base64url'), mac(payload))) return undefined;
      let data: { k?: unknown; e?: unknown; n?: unknown };
      try {
        data = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof data;
      } catch {
        return undefined;
      }
      if (typeof data.k !== 'string' || typeof data.e !== 'number' || typeof data.n !== 'string') return undefined;
      if (data.e <= now) return undefined;
      const roles = rolesByFingerprint.get(data.k);
      if (!roles) return undefined;
      return { roles, expiresAt: data.e, csrfToken: csrfOf(data.n) };
    },
    checkCsrf(session, presented) {
      return typeof presented === 'string' && equal(Buffer.from(presented), Buffer.from(session.csrfToken));
    },
  };
}

/** The Set-Cookie value of a session (maxAgeMs 0: the cookie is removed). */
export function sessionCookie(value: string, options: { secure: boolean; maxAgeMs: number }): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    `Path=${COOKIE_PATH}`,
    `Max-Age=${Math.max(0, Math.floor(options.maxAgeMs / 1000))}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(options.secure ? ['Secure'] : []),
  ].join('; ');
}

/** The session cookie's value in a Cookie header. */
export function readCookie(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) return rest.join('=');
  }
  return undefined;
}
