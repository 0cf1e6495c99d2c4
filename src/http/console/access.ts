/**
 * Who may do what on the console: `read` sees, `admin` acts.
 *
 * Each console route names its access in `config.console`: `public` (the login page, the
 * stylesheet), `read`, or `admin`; a route without it (bull-board's, a 404) needs `read`.
 * (The API's `config.roles` is not used here: that hook wants a Bearer header, which a
 * browser does not send when it navigates.)
 *
 * Per request, in order:
 *   onRequest   the session cookie (session.ts) gives the roles. None, or neither read nor
 *               admin: a page is redirected to the login page, anything else is 401.
 *               A POST that a browser says came from another site (Sec-Fetch-Site, Origin)
 *               is 403 (checked for every POST, login included). An `admin` route for a session without admin: 403, with a
 *               page that says so. /console/queues (bull-board) is read-only: anything but
 *               GET there is 405.
 *   preHandler  a POST outside the login page must carry the session's CSRF token in its
 *               `_csrf` field (403 without it). With SameSite=Strict cookies this is the
 *               second, independent guard against a forged request.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../contract/time.js';
import { html } from './html.js';
import { CONSOLE_PREFIX, messagePage } from './layout.js';
import { type ConsoleSession, type SessionCodec, readCookie } from './session.js';

export type ConsoleAccess = 'public' | 'read' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Console routes: who may use it (access.ts); default read. */
    console?: ConsoleAccess;
  }
}

export const BOARD_PATH = `${CONSOLE_PREFIX}/queues`;

const sessions = new WeakMap<FastifyRequest, ConsoleSession>();

/** The request's console session (set by the access hook; undefined on public routes without one). */
export function sessionOf(request: FastifyRequest): ConsoleSession | undefined {
  return sessions.get(request);
}

/** The session of a route that required one. */
export function requireSession(request: FastifyRequest): ConsoleSession {
  const session = sessions.get(request);
  if (!session) throw new Error('console route without a session: its access hook did not run');
  return session;
}

const isRead = (method: string) => method === 'GET' || method === 'HEAD';

/** Whether the request came over https (directly, or as a TLS-terminating proxy says). */
export function isHttps(request: FastifyRequest): boolean {
  const forwarded = request.headers['x-forwarded-proto'];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  return request.protocol === 'https' || proto === 'https';
}

/** A path inside the console to go back to after login; anything else becomes /console. */
export function safeNext(value: unknown): string {
  if (typeof value !== 'string') return CONSOLE_PREFIX;
  const path = value.split('?')[0]!;
  if (!/^\/console(\/|\?|$)/.test(value) || /\/\.\.?(\/|$)|\\|%2e|%2f|%5c/i.test(path)) return CONSOLE_PREFIX;
  return value;
}

function sameOrigin(request: FastifyRequest): boolean {
  // Browsers say where a request came from: Sec-Fetch-Site (all current ones), Origin on a POST.
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = request.headers.origin;
  if (origin === undefined || origin === 'null') return true; // not a browser's cross-site request
  const host = request.headers.host;
  return !!host && (origin === `http://${host}` || origin === `https://${host}`);
}

export function accessHooks(codec: SessionCodec, clock: Clock) {
  const onRequest = async (request: FastifyRequest, reply: FastifyReply) => {
    const access = request.routeOptions.config.console ?? 'read';
    const session = codec.read(readCookie(request.headers.cookie), clock());
    const usable = session && (session.roles.has('read') || session.roles.has('admin')) ? session : undefined;
    if (usable) sessions.set(request, usable);
    if (!isRead(request.method) && !sameOrigin(request)) {
      return messagePage(reply, 403, {
        title: 'Refused',
        message: html`This form was posted from another site. Open the console directly and try again.`,
        session: usable,
      });
    }
    if (access === 'public') return;
    if (!usable) {
      if (isRead(request.method)) {
        const next = safeNext(request.url);
        return reply.redirect(`${CONSOLE_PREFIX}/login?next=${encodeURIComponent(next)}`, 303);
      }
      return messagePage(reply, 401, {
        title: 'Not logged in',
        message: html`Your session has ended or was never started. <a href="/console/login">Log in</a> with a token of
          API_KEYS and try again.`,
      });
    }
    if (request.url.startsWith(BOARD_PATH) && !isRead(request.method)) {
      return messagePage(reply, 405, {
        title: 'The queue board is read-only',
        message: html`Retry, clean, remove and pause are not offered here: they would bypass aftercall's dead-letter
          accounting and expiry checks. Use <a href="/console/dead-letters">Dead letters</a> to replay or purge.`,
        session: usable,
      });
    }
    if (access === 'admin' && !usable.roles.has('admin')) {
      return messagePage(reply, 403, {
        title: 'Not allowed',
        message: html`Your key has the role <strong>${[...usable.roles].join(', ')}</strong>: it may look, not act. Replay
          and purge need a key with the role <strong>admin</strong>. Nothing was changed.`,
        session: usable,
      });
    }
  };

  const preHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const access = request.routeOptions.config.console ?? 'read';
    if (isRead(request.method) || access === 'public') return;
    const session = requireSession(request);
    const body = request.body as Record<string, unknown> | undefined;
    if (!codec.checkCsrf(session, body?._csrf)) {
      return messagePage(reply, 403, {
        title: 'Refused',
        message: html`This form is stale or did not come from the console (its CSRF token does not match your session).
          Reload the page and try again. Nothing was changed.`,
        session,
      });
    }
  };

  return { onRequest, preHandler };
}
