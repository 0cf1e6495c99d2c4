/**
 * Dead letters, filtered, replayed and purged:
 *   GET  /console/dead-letters?type=&reason=&since=&until=   (read)  newest first, at most LIST_LIMIT
 *   POST /console/dead-letters/confirm                        (admin) the dry run: what would be done
 *   POST /console/dead-letters/act                            (admin) do it, then say what was done
 * Single (one jobId) or bulk (every entry of a type matching the selectors); both go through
 * the confirm page, which shows the dry run's count ("N tasks would be replayed, M expired
 * (need a new expiry)") and asks for a new expiry where one is needed. Selection and actions
 * are the API's (dead-letter-selection.ts).
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Clock } from '../../../contract/time.js';
import { toIso } from '../../../contract/time.js';
import type { FieldIssue } from '../../../contract/validation-error.js';
import { summarizeHistory } from '../../../redis/attempt-history.js';
import { DEAD_LETTER_REASONS, DeadLetterQueue } from '../../../redis/dead-letter-queue.js';
import type { RedisClient } from '../../../redis/scripts.js';
import { taskTypes } from '../../../tasks/catalog.js';
import type { RedisCall } from '../../errors.js';
import { requireSession } from '../access.js';
import {
  type ActionRequest,
  type ActionResult,
  listSelected,
  parseAction,
  parseSelectors,
  runAction,
  type Selectors,
} from '../dead-letter-selection.js';
import { expiry, when } from '../format.js';
import { type SafeHtml, html, url } from '../html.js';
import { csrfField, page, sendPage } from '../layout.js';
import type { ConsoleSession } from '../session.js';

export const LIST_LIMIT = 200;

export interface DeadLetterPageOptions {
  redis: RedisClient;
  keyPrefix: string;
  redisCall: RedisCall;
  clock: Clock;
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

function hidden(fields: Record<string, string | undefined>): SafeHtml {
  return html`${Object.entries(fields).map(([name, value]) =>
    value === undefined ? '' : html`<input type="hidden" name="${name}" value="${value}">`,
  )}`;
}

/** Replay and purge buttons for one entry: each opens the confirm page (admin). */
export function actionButtons(target: { type: string; jobId: string }, canAct: boolean, csrf: SafeHtml): SafeHtml {
  const title = canAct ? '' : 'needs a key with the role admin';
  return html`${(['replay', 'purge'] as const).map(
    (action) =>
      html`<form class="inline" method="post" action="/console/dead-letters/confirm">${csrf}${hidden({
        action,
        type: target.type,
        jobId: target.jobId,
      })}<button type="submit" class="${action === 'purge' ? 'secondary' : ''}" title="${title}">${action === 'replay' ? 'Replay…' : 'Purge…'}</button></form>`,
  )}`;
}

function issuesList(issues: readonly FieldIssue[]): SafeHtml {
  return html`<ul>${issues.map((issue) => html`<li><code>${issue.path || '(form)'}</code>: ${issue.message}</li>`)}</ul>`;
}

function filterForm(selectors: Record<string, string | undefined>): SafeHtml {
  const option = (value: string, selected: string | undefined, label = value) =>
    html`<option value="${value}"${value === (selected ?? '') ? html` selected` : ''}>${label}</option>`;
  return html`<form class="filters" method="get" action="/console/dead-letters">
    <label>Type<select name="type">${option('', selectors.type, 'all types')}${taskTypes.map((type) =>
      option(type, selectors.type),
    )}</select></label>
    <label>Reason<select name="reason">${option('', selectors.reason, 'all reasons')}${DEAD_LETTER_REASONS.map(
      (reason) => option(reason, selectors.reason),
    )}</select></label>
    <label>Since<input type="text" name="since" value="${selectors.since ?? ''}" placeholder="2h or 2026-12-01T09:00:00Z"></label>
    <label>Until<input type="text" name="until" value="${selectors.until ?? ''}" placeholder="30m or 2026-12-01T12:00:00Z"></label>
    <button type="submit">Filter</button>
    <a href="/console/dead-letters">clear</a>
  </form>`;
}

function bulkBox(selectors: Selectors, count: number, session: ConsoleSession): SafeHtml {
  if (!selectors.type) {
    return html`<p class="muted">To replay or purge in bulk, choose a task type (each type's dead letters live in its own
      Redis slot, so an action covers one type).</p>`;
  }
  if (!count) return html``;
  const fields = {
    type: selectors.type,
    reason: selectors.reason,
    since: selectors.since,
    until: selectors.until,
  };
  return html`<div class="actions" data-testid="bulk">
    <strong>Every ${selectors.type} entry matching these filters:</strong>
    ${(['replay', 'purge'] as const).map(
      (action) =>
        html`<form class="inline" method="post" action="/console/dead-letters/confirm">${csrfField(session)}${hidden({
          action,
          ...fields,
        })}<button type="submit" class="${action === 'purge' ? 'danger' : ''}">${action === 'replay' ? 'Replay all…' : 'Purge all…'}</button></form>`,
    )}
    <span class="muted">A dry run shows the count first.</span>
  </div>`;
}

function describeSelection(request: ActionRequest): SafeHtml {
  if (request.jobId !== undefined) return html`the ${request.type} task <code>${request.jobId}</code>`;
  return html`every <strong>${request.type}</strong> dead letter${request.reason && html` with reason <strong>${request.reason}</strong>`}${
    request.since && html`, dead-lettered since <code>${request.since}</code>`
  }${request.until && html`, until <code>${request.until}</code>`}`;
}

function dryRunSentence(result: ActionResult): string {
  const verb = result.action === 'replay' ? 'replayed' : 'purged';
  const head = `${plural(result.matched, 'task')} would be ${verb}`;
  return result.action === 'replay' ? `${head}, ${result.expired} expired (need a new expiry)` : head;
}

function failedTable(result: ActionResult): SafeHtml {
  if (!result.failed.length) return html``;
  return html`<h2>Not done</h2><table><thead><tr><th>job id</th><th>why</th></tr></thead><tbody>${result.failed.map(
    (failure) => html`<tr><td><code>${failure.jobId}</code></td><td class="error-text">${failure.error}</td></tr>`,
  )}</tbody></table>`;
}

function badRequest(reply: FastifyReply, session: ConsoleSession, issues: readonly FieldIssue[]) {
  return sendPage(
    reply,
    400,
    page({
      title: 'Invalid request',
      session,
      current: 'dead-letters',
      body: html`<h1>Invalid request</h1><div class="notice bad" data-testid="message">${issuesList(issues)}</div>
        <p><a href="/console/dead-letters">Back to the dead letters</a></p>`,
    }),
  );
}

function listUrl(request: ActionRequest): string {
  return url('/console/dead-letters', {
    type: request.type,
    reason: request.reason,
    since: request.since,
    until: request.until,
  });
}

export const deadLetterPages: FastifyPluginAsync<DeadLetterPageOptions> = async (app, options) => {
  const dlq = new DeadLetterQueue(options.redis, options.keyPrefix);

  app.get<{ Querystring: Record<string, string | undefined> }>(
    '/console/dead-letters',
    { config: { console: 'read' }, schema: { hide: true } },
    async (request, reply) => {
      const session = requireSession(request);
      const now = options.clock();
      const parsed = parseSelectors(request.query, now);
      if (!parsed.ok) return badRequest(reply, session, parsed.issues);
      const selectors = parsed.value;
      const entries = await options.redisCall(() => listSelected(dlq, selectors, LIST_LIMIT + 1));
      const shown = entries.slice(0, LIST_LIMIT);
      const canAct = session.roles.has('admin');
      const csrf = csrfField(session);
      const body = html`<h1>Dead letters</h1>
        <div class="card">${filterForm({
          type: request.query.type,
          reason: request.query.reason,
          since: request.query.since,
          until: request.query.until,
        })}</div>
        <p data-testid="count">${
          entries.length > LIST_LIMIT
            ? `the newest ${LIST_LIMIT} matching entries (there are more: narrow the filters)`
            : `${shown.length} matching ${shown.length === 1 ? 'entry' : 'entries'}, newest first`
        }</p>
        ${bulkBox(selectors, shown.length, session)}
        ${
          shown.length
            ? html`<table data-testid="dead-letters"><thead><tr><th>type</th><th>reason</th><th>conversation</th>
                <th>attempts</th><th>dead-lettered</th><th>expires</th><th>last error</th><th></th></tr></thead>
                <tbody>${shown.map(
                  (entry) => html`<tr data-testid="dead-letter" data-job-id="${entry.jobId}">
                    <td>${entry.type}</td>
                    <td><span class="badge bad">${entry.reason}</span></td>
                    <td>${
                      entry.conversationId
                        ? html`<a href="${url('/console/conversation', { id: entry.conversationId })}"><code>${entry.conversationId}</code></a>`
                        : html`<span class="muted">–</span>`
                    }</td>
                    <td>${entry.attempts}<br><span class="muted">${summarizeHistory(entry.history)}</span></td>
                    <td>${when(entry.deadLetteredAt, now)}</td>
                    <td>${expiry(entry.expiresAt, now)}</td>
                    <td>${entry.lastError ? html`<span class="error-text">${entry.lastError}</span>` : html`<span class="muted">–</span>`}
                      <details><summary class="muted">payload</summary><pre class="mono">${JSON.stringify(entry.payload, null, 2)}</pre></details></td>
                    <td><div class="actions">${actionButtons(entry, canAct, csrf)}</div></td>
                  </tr>`,
                )}</tbody></table>`
            : html`<div class="notice ok" data-testid="empty">No dead letter matches.</div>`
        }`;
      return sendPage(reply, 200, page({ title: 'Dead letters', session, current: 'dead-letters', body }));
    },
  );

  app.post<{ Body: Record<string, unknown> }>(
    '/console/dead-letters/confirm',
    { config: { console: 'admin' }, schema: { hide: true } },
    async (request, reply) => {
      const session = requireSession(request);
      const now = options.clock();
      const parsed = parseAction(request.body ?? {}, now);
      if (!parsed.ok) return badRequest(reply, session, parsed.issues);
      // A bulk action acts on what was counted: entries dead-lettered after this page are left out.
      const action: ActionRequest =
        parsed.value.all && !parsed.value.until ? { ...parsed.value, until: toIso(now) } : parsed.value;
      const result = await options.redisCall(() => runAction(dlq, action, { dryRun: true, clock: options.clock }));
      const verb = action.action === 'replay' ? 'Replay' : 'Purge';
      const body = html`<h1>${verb}: dry run</h1>
        <p>Selected: ${describeSelection(action)}.</p>
        <div class="notice ${result.matched ? 'warn' : 'ok'}" data-testid="dry-run">${dryRunSentence(result)}.</div>
        ${failedTable(result)}
        ${
          result.matched
            ? html`<form method="post" action="/console/dead-letters/act" class="card">${csrfField(session)}${hidden({
                action: action.action,
                type: action.type,
                jobId: action.jobId,
                reason: action.reason,
                since: action.since,
                until: action.until,
              })}
              ${
                action.action === 'replay'
                  ? html`<p>${
                      result.expired
                        ? html`<strong>${plural(result.expired, 'task')} expired</strong> and will not be replayed unless you
                            give a new expiry (a stale confirmation must not go out).`
                        : html`None has expired; a new expiry is optional.`
                    } A new expiry applies to every task replayed here, counted from now.</p>
                    <label>New expiry from now (e.g. 30m, 2h; empty: keep each task's own)
                      <input type="text" name="extend" value="${action.extend ?? ''}" placeholder="2h"></label>`
                  : html`<p>Purged tasks are deleted for good; their idempotency keys may be enqueued again.</p>`
              }
              <div class="actions"><button type="submit" class="${action.action === 'purge' ? 'danger' : ''}">${verb} ${plural(
                result.matched,
                'task',
              )}</button> <a href="${listUrl(action)}">Cancel</a></div>
            </form>`
            : html`<p><a href="${listUrl(action)}">Back to the dead letters</a></p>`
        }`;
      return sendPage(reply, 200, page({ title: `${verb}: dry run`, session, current: 'dead-letters', body }));
    },
  );

  app.post<{ Body: Record<string, unknown> }>(
    '/console/dead-letters/act',
    { config: { console: 'admin' }, schema: { hide: true } },
    async (request, reply) => {
      const session = requireSession(request);
      const parsed = parseAction(request.body ?? {}, options.clock());
      if (!parsed.ok) return badRequest(reply, session, parsed.issues);
      const action = parsed.value;
      const result = await options.redisCall(() => runAction(dlq, action, { dryRun: false, clock: options.clock }));
      const past = action.action === 'replay' ? 'Replayed' : 'Purged';
      request.log.info(
        {
          action: action.action,
          type: action.type,
          matched: result.matched,
          done: result.done,
          failed: result.failed.length,
        },
        'console: dead letters acted on',
      );
      const body = html`<h1>${past} ${result.done} of ${plural(result.matched, 'task')}</h1>
        <div class="notice ${result.failed.length ? 'warn' : 'ok'}" data-testid="result">${past} ${result.done} of
          ${plural(result.matched, 'selected task')}${result.failed.length ? `; ${result.failed.length} not done (below)` : ''}.</div>
        ${failedTable(result)}
        <p><a href="${listUrl(action)}">Back to the dead letters</a></p>`;
      return sendPage(reply, 200, page({ title: past, session, current: 'dead-letters', body }));
    },
  );
};
