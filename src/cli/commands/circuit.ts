/**
 * `aftercall circuit ...`: the destinations' circuits, holds and rate limits (src/ops/destinations.ts).
 *   list   [--json]                                    every routed or recorded destination
 *   open   <destination> [--for 10m] [--reason TEXT]   an operator pause (a known incident)
 *   close  <destination> [--json]                      back to closed: ends an operator's or a 410's hold
 * A destination is `resend`, `twilio` or `webhook:<type>`; an unknown one is a usage error
 * naming the known ones (exit 2).
 */
import { createDestinationOps, type DestinationView, UnknownDestinationError } from '../../ops/destinations.js';
import { createRedisConnection } from '../../redis/connection.js';
import { duration, UsageError } from '../args.js';
import { defineCommand } from '../command.js';
import { table } from '../io.js';

const ACTIONS = ['list', 'open', 'close'] as const;

const percent = (ratio: number) => `${Math.round(ratio * 100)}%`;

/** One row of the text table. */
const row = (view: DestinationView) => ({
  destination: view.destination,
  state: view.state,
  since: view.since ?? '-',
  [`failures/${view.window}`]:
    view.failureRatio === null ? '0/0' : `${view.failures}/${view.calls} (${percent(view.failureRatio)})`,
  nextProbe: view.nextProbe ?? (view.state === 'half_open' ? 'probing' : view.state === 'open' ? 'none (manual)' : '-'),
  // An open circuit's end is its next probe; the column is for holds.
  heldUntil: view.state !== 'held' ? '-' : (view.until ?? 'circuit close'),
  // The limit in force; `(stated)` when the destination's own, lower than ours, governs.
  rateLimit: !view.limitInForce
    ? 'none'
    : view.limitInForce === view.rateLimit
      ? view.limitInForce
      : `${view.limitInForce} (stated)`,
  reason: view.reason ?? '-',
});

const describe = (view: DestinationView) => {
  const parts = [`${view.destination}: ${view.state}`];
  if (view.nextProbe) parts.push(`next probe at ${view.nextProbe}`);
  else if (view.until) parts.push(`until ${view.until}`);
  else if (view.state === 'open' || view.state === 'held') parts.push('until `aftercall circuit close`');
  if (view.reason) parts.push(`(${view.reason})`);
  return `${parts.join(' ')}\n`;
};

export const command = defineCommand({
  name: 'circuit',
  synopsis: [
    'aftercall circuit list [--json]',
    'aftercall circuit open <destination> [--for 10m] [--reason TEXT] [--json]',
    'aftercall circuit close <destination> [--json]',
  ],
  summary: `Destinations (resend, twilio, webhook:<type>): state, failure ratio, next probe,
rate limit; pause one during a known incident (open), or resume it (close).`,
  options: {
    for: { type: 'string' },
    reason: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: true,
  async run({ values, positionals }, context) {
    const [action, destination, ...extra] = positionals;
    if (!(ACTIONS as readonly (string | undefined)[]).includes(action)) {
      throw new UsageError('expected circuit list, circuit open <destination> or circuit close <destination>');
    }
    if (action === 'list' ? destination !== undefined : extra.length) {
      throw new UsageError(`unexpected argument ${JSON.stringify(action === 'list' ? destination : extra[0])}`);
    }
    if (action !== 'list' && !destination) {
      throw new UsageError(`expected a destination: aftercall circuit ${action} <destination>`);
    }
    if (action !== 'open' && (values.for !== undefined || values.reason !== undefined)) {
      throw new UsageError(`--${values.for !== undefined ? 'for' : 'reason'} applies to circuit open only`);
    }
    const forMs = duration('for', values.for);
    if (forMs !== undefined && forMs < 1) {
      throw new UsageError(`--for: expected a duration above zero such as 10m, got ${JSON.stringify(values.for)}`);
    }
    if (values.reason !== undefined && !values.reason.trim()) throw new UsageError('--reason: expected some text');

    const config = context.config();
    const { io } = context;
    const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-circuit' });
    const ops = createDestinationOps({ client, config });
    const print = (view: DestinationView) =>
      io.stdout.write(values.json ? `${JSON.stringify(view, null, 2)}\n` : describe(view));
    try {
      if (action === 'list') {
        for (const problem of ops.problems) io.stderr.write(`not routed in this environment: ${problem}\n`);
        const views = await ops.list();
        if (values.json) io.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
        else if (!views.length) io.stdout.write('no destination is configured or recorded\n');
        else {
          const rows = views.map(row);
          io.stdout.write(table(rows, Object.keys(rows[0]!), 80));
        }
        return 0;
      }
      if (action === 'open') {
        print(
          await ops.open(destination!, {
            ...(forMs !== undefined && { forMs }),
            ...(values.reason !== undefined && { reason: values.reason.trim() }),
          }),
        );
        return 0;
      }
      const { previous, view } = await ops.close(destination!);
      if (values.json) print(view);
      else
        io.stdout.write(
          `${view.destination}: closed${previous === 'closed' ? ' (it was closed)' : ` (was ${previous})`}\n`,
        );
      return 0;
    } catch (error) {
      if (error instanceof UnknownDestinationError) throw new UsageError(error.message);
      throw error;
    } finally {
      client.disconnect();
    }
  },
});
