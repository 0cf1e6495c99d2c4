/**
 * Search by conversation id, and a conversation's timeline:
 *   GET /console                       (read) the search form
 *   GET /console/conversation?id=...   (read) every task of the conversation (ops/status.ts):
 *                                      state, run time, expiry, and every attempt kept
 *                                      (redis/attempt-history.ts): when, how long, where to,
 *                                      the result, the HTTP status and the error.
 * The id travels in the query string: conversation ids may hold `/`, spaces and any script.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Clock } from '../../../contract/time.js';
import { conversationStatus, type TaskStatus } from '../../../ops/status.js';
import type { AttemptRecord } from '../../../redis/attempt-history.js';
import type { RedisClient } from '../../../redis/scripts.js';
import type { RedisCall } from '../../errors.js';
import { requireSession } from '../access.js';
import { durationMs, expiry, when } from '../format.js';
import { type SafeHtml, html, url } from '../html.js';
import { page, sendPage } from '../layout.js';
import { actionButtons } from './dead-letters.js';

export interface ConversationPageOptions {
  redis: RedisClient;
  keyPrefix: string;
  redisCall: RedisCall;
  clock: Clock;
}

function searchForm(value = ''): SafeHtml {
  return html`<form class="filters" method="get" action="/console/conversation" role="search">
    <label>Conversation id<input type="search" name="id" value="${value}" required autofocus
      placeholder="e.g. call-2026-11-26-0001 or retell:abc123"></label>
    <button type="submit">Show timeline</button>
  </form>`;
}

export function attemptsTable(history: readonly AttemptRecord[], now: number): SafeHtml {
  if (!history.length)
    return html`<p class="muted">No attempt recorded (the task has not reached its destination).</p>`;
  return html`<table class="attempts">
    <thead><tr><th class="num">#</th><th>started</th><th class="num">duration</th><th>destination</th><th>result</th>
      <th class="num">HTTP</th><th>error</th></tr></thead>
    <tbody>${history.map(
      (entry) => html`<tr data-testid="attempt">
        <td class="num">${entry.attempt}</td>
        <td>${when(entry.startedAt, now)}</td>
        <td class="num">${durationMs(entry.durationMs)}</td>
        <td><code>${entry.destination ?? '–'}</code></td>
        <td><span class="badge ${entry.result}">${entry.result}</span></td>
        <td class="num">${entry.status ?? '–'}</td>
        <td>${entry.error ? html`<span class="error-text">${entry.error}</span>` : html`<span class="muted">–</span>`}</td>
      </tr>`,
    )}</tbody>
  </table>`;
}

function taskCard(task: TaskStatus, now: number, canAct: boolean, csrf: SafeHtml): SafeHtml {
  return html`<section class="card task" data-testid="task" data-type="${task.type}">
    <div class="task-head">
      <h2>${task.type}</h2>
      <span class="badge ${task.state}" data-testid="state">${task.state.replace('_', ' ')}</span>
      ${task.deadLetterReason && html`<span class="badge bad">${task.deadLetterReason}</span>`}
      <span class="muted">${task.attempts} provider call${task.attempts === 1 ? '' : 's'}</span>
    </div>
    <dl class="facts">
      <dt>runs at</dt><dd>${when(task.runAt, now)}</dd>
      <dt>expires</dt><dd>${expiry(task.expiresAt, now)}</dd>
      <dt>finished</dt><dd>${when(task.finishedAt, now)}</dd>
      <dt>job id</dt><dd><code>${task.jobId}</code></dd>
      <dt>idempotency key</dt><dd><code>${task.idempotencyKey}</code></dd>
      ${task.lastError && html`<dt>last error</dt><dd><span class="error-text">${task.lastError}</span></dd>`}
    </dl>
    ${
      task.state === 'dead_lettered' &&
      html`<div class="actions">${actionButtons({ type: task.type, jobId: task.jobId }, canAct, csrf)}</div>`
    }
    <h3 class="muted">Attempts</h3>
    ${attemptsTable(task.history, now)}
  </section>`;
}

export const conversationPages: FastifyPluginAsync<ConversationPageOptions> = async (app, options) => {
  app.get('/console', { config: { console: 'read' }, schema: { hide: true } }, async (request, reply) => {
    const session = requireSession(request);
    return sendPage(
      reply,
      200,
      page({
        title: 'Search',
        session,
        current: 'search',
        body: html`<h1>Find a conversation</h1>
          <div class="card">${searchForm()}</div>
          <p class="muted">The timeline shows each task the conversation's outcome created, its state and expiry, and
            every attempt with its time, destination, HTTP status and error.</p>`,
      }),
    );
  });

  app.get<{ Querystring: { id?: string } }>(
    '/console/conversation',
    { config: { console: 'read' }, schema: { hide: true } },
    async (request, reply) => {
      const session = requireSession(request);
      const id = typeof request.query.id === 'string' ? request.query.id.trim() : '';
      if (!id) return reply.redirect('/console', 303);
      const tasks = await options.redisCall(() => conversationStatus(options.redis, options.keyPrefix, id));
      const now = options.clock();
      tasks.sort((a, b) => (a.runAt ?? '').localeCompare(b.runAt ?? '') || a.type.localeCompare(b.type));
      const canAct = session.roles.has('admin');
      const csrf = html`<input type="hidden" name="_csrf" value="${session.csrfToken}">`;
      const counts = new Map<string, number>();
      for (const task of tasks) counts.set(task.state, (counts.get(task.state) ?? 0) + 1);
      const body = html`<div class="card">${searchForm(id)}</div>
        <h1>Conversation <code data-testid="conversation-id">${id}</code></h1>
        ${
          tasks.length
            ? html`<p>${tasks.length} task${tasks.length === 1 ? '' : 's'}:
                ${[...counts].map(([state, count]) => html`<span class="badge ${state}">${count} ${state.replace('_', ' ')}</span> `)}
                <a class="muted" href="${url('/console/dead-letters', {})}">all dead letters</a></p>
                ${tasks.map((task) => taskCard(task, now, canAct, csrf))}`
            : html`<div class="notice warn" data-testid="no-tasks">No task is known for this conversation id. Either its
                outcome never reached aftercall, or every task completed more than the dedupe window ago (completed
                jobs are removed then). Ids are exact: check case and prefixes such as <code>retell:</code>.</div>`
        }`;
      return sendPage(reply, 200, page({ title: `Conversation ${id}`, session, current: 'search', body }));
    },
  );
};
