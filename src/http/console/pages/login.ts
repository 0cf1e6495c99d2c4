/**
 * Logging in and out:
 *   GET  /console/login    (public) a form for a token of API_KEYS
 *   POST /console/login    (public) checks it (constant time, the API's authenticator); a read
 *                          or admin token gets the session cookie (session.ts) and goes on
 *                          to `next`; a wrong token: 401; an ingest-only token: 403
 *   POST /console/logout   (read)   clears the cookie
 * The token is never logged, echoed or stored: only the signed session is.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Clock } from '../../../contract/time.js';
import { createAuthenticator } from '../../auth.js';
import type { ApiKey } from '../../environment.js';
import { isHttps, safeNext, sessionOf } from '../access.js';
import { html } from '../html.js';
import { page, sendPage } from '../layout.js';
import { SESSION_TTL_MS, type SessionCodec, sessionCookie } from '../session.js';

export interface LoginPageOptions {
  apiKeys: readonly ApiKey[];
  codec: SessionCodec;
  clock: Clock;
}

function loginPage(reply: FastifyReply, status: number, next: string, problem?: string) {
  return sendPage(
    reply,
    status,
    page({
      title: 'Log in',
      body: html`<div class="card login">
        <h1>aftercall console</h1>
        ${problem && html`<div class="notice bad" data-testid="login-error">${problem}</div>`}
        <form method="post" action="/console/login">
          <input type="hidden" name="next" value="${next}">
          <label>API token (a <code>read</code> or <code>admin</code> key of API_KEYS)
            <input type="password" name="token" autocomplete="current-password" required autofocus></label>
          <button type="submit">Log in</button>
        </form>
        <p class="muted">The token is checked and forgotten: your browser keeps a signed session cookie (HttpOnly,
          SameSite=Strict) for 12 hours. <code>read</code> sees everything; replay and purge need <code>admin</code>.</p>
      </div>`,
    }),
  );
}

export const loginPages: FastifyPluginAsync<LoginPageOptions> = async (app, options) => {
  const authenticate = createAuthenticator(options.apiKeys);

  app.get<{ Querystring: { next?: string } }>(
    '/console/login',
    { config: { console: 'public' }, schema: { hide: true } },
    async (request, reply) => {
      const next = safeNext(request.query.next);
      if (sessionOf(request)) return reply.redirect(next, 303);
      return loginPage(reply, 200, next);
    },
  );

  app.post<{ Body: Record<string, unknown> }>(
    '/console/login',
    { config: { console: 'public' }, schema: { hide: true } },
    async (request, reply) => {
      const body = request.body ?? {};
      const next = safeNext(body.next);
      const token = typeof body.token === 'string' ? body.token.trim() : '';
      const roles = token && !/\s/.test(token) ? authenticate(`Bearer ${token}`) : new Set();
      if (!roles.size) return loginPage(reply, 401, next, 'That token is not one of the API keys of this server.');
      if (!roles.has('read') && !roles.has('admin')) {
        return loginPage(reply, 403, next, 'That token has the role ingest only; the console needs read or admin.');
      }
      const cookie = options.codec.issue(token, options.clock());
      return reply
        .header('set-cookie', sessionCookie(cookie, { secure: isHttps(request), maxAgeMs: SESSION_TTL_MS }))
        .redirect(next, 303);
    },
  );

  app.post('/console/logout', { config: { console: 'read' }, schema: { hide: true } }, async (request, reply) =>
    reply
      .header('set-cookie', sessionCookie('', { secure: isHttps(request), maxAgeMs: 0 }))
      .redirect('/console/login', 303),
  );
};
