/**
 * GET /console/destinations (read): each destination's state, fleet-wide, as
 * `aftercall circuit list` shows it (ops/destinations.ts): closed, open, half_open or held,
 * since when and why, the calls and failures in the circuit's window, the next probe, and
 * the configured rate limit. Opening and closing stay with `aftercall circuit open|close`.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { AftercallConfig } from '../../../config/environment.js';
import type { Clock } from '../../../contract/time.js';
import { createDestinationOps } from '../../../ops/destinations.js';
import type { RedisClient } from '../../../redis/scripts.js';
import type { RedisCall } from '../../errors.js';
import { requireSession } from '../access.js';
import { when } from '../format.js';
import { html } from '../html.js';
import { page, sendPage } from '../layout.js';

export interface DestinationPageOptions {
  redis: RedisClient;
  config: AftercallConfig;
  redisCall: RedisCall;
  clock: Clock;
}

export const destinationPages: FastifyPluginAsync<DestinationPageOptions> = async (app, options) => {
  const ops = createDestinationOps({ client: options.redis, config: options.config, clock: options.clock });
  app.get('/console/destinations', { config: { console: 'read' }, schema: { hide: true } }, async (request, reply) => {
    const session = requireSession(request);
    const views = await options.redisCall(() => ops.list());
    const now = options.clock();
    const body = html`<h1>Destinations</h1>
      <p class="muted">Shared by the whole fleet through Redis. Waiting for a rate limit, a 429 or an open circuit spends
        a task's time (bounded by its expiry), not its attempts. Open or close a circuit with
        <code>aftercall circuit open|close &lt;destination&gt;</code>.</p>
      ${
        ops.problems.length > 0 &&
        html`<div class="notice warn">Routes this server cannot resolve (its environment lacks their variables):
          <ul>${ops.problems.map((problem) => html`<li>${problem}</li>`)}</ul></div>`
      }
      ${
        views.length
          ? html`<table data-testid="destinations"><thead><tr><th>destination</th><th>state</th><th>since</th><th>reason</th>
              <th class="num">calls</th><th class="num">failures</th><th class="num">failure ratio</th><th>next probe / until</th>
              <th>rate limit</th><th>task types</th></tr></thead>
              <tbody>${views.map(
                (view) => html`<tr data-testid="destination" data-destination="${view.destination}">
                  <td><code>${view.destination}</code></td>
                  <td><span class="badge ${view.state}">${view.state.replace('_', ' ')}</span>${view.manual && html` <span class="badge">manual</span>`}</td>
                  <td>${when(view.since, now)}</td>
                  <td>${view.reason ?? html`<span class="muted">–</span>`}</td>
                  <td class="num">${view.calls}</td>
                  <td class="num">${view.failures}</td>
                  <td class="num">${view.failureRatio === null ? '–' : `${Math.round(view.failureRatio * 1000) / 10} %`}
                    <span class="muted">/ ${view.window}</span></td>
                  <td>${view.nextProbe ? when(view.nextProbe, now) : when(view.until, now)}</td>
                  <td>${
                    !view.limitInForce
                      ? html`<span class="muted">none</span>`
                      : view.limitInForce === view.rateLimit
                        ? view.limitInForce
                        : html`${view.limitInForce} <span class="muted">(stated by the destination)</span>`
                  }</td>
                  <td>${view.types.join(', ') || html`<span class="muted">recorded only</span>`}</td>
                </tr>`,
              )}</tbody></table>`
          : html`<div class="notice">No destination is configured or recorded.</div>`
      }`;
    return sendPage(reply, 200, page({ title: 'Destinations', session, current: 'destinations', body }));
  });
};
