/**
 * GET /console/queue-depths (read): per task type, how many jobs are waiting, scheduled
 * (delayed), retrying, active, completed (kept for the dedupe window) and dead-lettered
 * (by reason), and how many BullMQ workers serve the queue. The live counts come from the
 * fleet-state reader the metrics use (redis/fleet-state.ts); completed from BullMQ's
 * getJobCounts on each type's queue.
 */
import type { Queue } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';
import { DEAD_LETTER_REASONS } from '../../../redis/dead-letter-queue.js';
import { readFleetState } from '../../../redis/fleet-state.js';
import type { RedisClient } from '../../../redis/scripts.js';
import { taskTypes, type TaskType } from '../../../tasks/catalog.js';
import type { RedisCall } from '../../errors.js';
import { requireSession } from '../access.js';
import { html, url } from '../html.js';
import { page, sendPage } from '../layout.js';

export interface QueueDepthPageOptions {
  redis: RedisClient;
  keyPrefix: string;
  redisCall: RedisCall;
  queues: ReadonlyMap<TaskType, Queue>;
  /** Whether bull-board is mounted at /console/queues. */
  board: boolean;
}

export const queueDepthPages: FastifyPluginAsync<QueueDepthPageOptions> = async (app, options) => {
  app.get('/console/queue-depths', { config: { console: 'read' }, schema: { hide: true } }, async (request, reply) => {
    const session = requireSession(request);
    const [state, completed] = await options.redisCall(() =>
      Promise.all([
        readFleetState(options.redis, options.keyPrefix),
        Promise.all(
          taskTypes.map(async (type) => (await options.queues.get(type)?.getJobCounts('completed'))?.completed ?? 0),
        ),
      ]),
    );
    const cell = (value: number) => html`<td class="num">${value}</td>`;
    const body = html`<h1>Queue depths</h1>
      <table data-testid="queue-depths"><thead><tr><th>type</th><th class="num">waiting</th><th class="num">scheduled</th>
        <th class="num">retrying</th><th class="num">active</th><th class="num">completed</th>
        ${DEAD_LETTER_REASONS.map((reason) => html`<th class="num">dead: ${reason}</th>`)}
        <th class="num">workers</th></tr></thead>
      <tbody>${taskTypes.map((type, index) => {
        const jobs = state.jobs[type];
        const dead = state.deadLetters[type];
        return html`<tr data-testid="queue" data-type="${type}">
          <td>${type}</td>${cell(jobs.waiting)}${cell(jobs.delayed)}${cell(jobs.retrying)}${cell(jobs.active)}${cell(completed[index] ?? 0)}
          ${DEAD_LETTER_REASONS.map((reason) =>
            dead[reason]
              ? html`<td class="num"><a href="${url('/console/dead-letters', { type, reason })}">${dead[reason]}</a></td>`
              : cell(0),
          )}
          ${cell(state.workers[type])}
        </tr>`;
      })}</tbody></table>
      <p class="muted">Scheduled: waiting for their run time (reminders, surveys). Retrying: waiting for the next attempt.
        Completed jobs are kept for the dedupe window. ${
          options.board
            ? html`The <a href="/console/queues">queue board</a> (bull-board, read-only) lists the jobs themselves.`
            : html`The queue board (bull-board) is not mounted on this server (see its log).`
        }</p>`;
    return sendPage(reply, 200, page({ title: 'Queue depths', session, current: 'queues', body }));
  });
};
