/**
 * The console's page shell and how a page is sent.
 *
 * Every page is one HTML document with no script: the Content-Security-Policy allows the
 * console's own stylesheet and same-origin form posts, and nothing else (no script, no
 * inline style, no frame), so even markup that slipped past escaping could not run.
 * Pages show customer data, so they are never cached, never framed, and send no Referer to other sites.
 */
import type { FastifyReply } from 'fastify';
import type { ConsoleSession } from './session.js';
import { type SafeHtml, html } from './html.js';

export const CONSOLE_PREFIX = '/console';

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const NAV = [
  ['search', '/console', 'Search'],
  ['dead-letters', '/console/dead-letters', 'Dead letters'],
  ['destinations', '/console/destinations', 'Destinations'],
  ['queues', '/console/queue-depths', 'Queue depths'],
  ['board', '/console/queues', 'Queue board'],
] as const;

export type NavItem = (typeof NAV)[number][0];

export interface PageOptions {
  title: string;
  session?: ConsoleSession | undefined;
  current?: NavItem;
  body: SafeHtml;
}

/** The hidden field every form of a session posts. */
export function csrfField(session: ConsoleSession | undefined): SafeHtml {
  return session ? html`<input type="hidden" name="_csrf" value="${session.csrfToken}">` : html``;
}

export function page({ title, session, current, body }: PageOptions): SafeHtml {
  const roles = session ? [...session.roles].filter((role) => role !== 'ingest') : [];
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · aftercall console</title>
<link rel="stylesheet" href="/console/assets/console.css">
</head>
<body>
<header class="top">
  <span class="brand">aftercall</span>
  ${
    session &&
    html`<nav>${NAV.map(
      ([id, href, label]) => html`<a href="${href}"${id === current ? html` class="current"` : ''}>${label}</a>`,
    )}</nav>
  <div class="who"><span>role: <strong data-testid="role">${roles.join(', ')}</strong></span>
    <form class="inline" method="post" action="/console/logout">${csrfField(session)}<button class="link" type="submit">Log out</button></form>
  </div>`
  }
</header>
<main>
${body}
</main>
</body>
</html>`;
}

/** Sends a console page with its security headers. */
export function sendPage(reply: FastifyReply, status: number, markup: SafeHtml): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('cache-control', 'no-store')
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .send(markup.text);
}

/** A page that only says something: an error, a refusal, a result. */
export function messagePage(
  reply: FastifyReply,
  status: number,
  options: { title: string; message: SafeHtml; session?: ConsoleSession | undefined; tone?: 'bad' | 'warn' | 'ok' },
): FastifyReply {
  return sendPage(
    reply,
    status,
    page({
      title: options.title,
      session: options.session,
      body: html`<h1>${options.title}</h1><div class="notice ${options.tone ?? 'bad'}" data-testid="message">${options.message}</div>
        <p><a href="/console">Back to the console</a></p>`,
    }),
  );
}
