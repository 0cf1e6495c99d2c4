/**
 * The demo's report: the lines `aftercall demo` prints. A progress bar while the fleet
 * works (redrawn in place on a terminal, a line every 2 s otherwise), then the accounting:
 * every enqueued task's final state, counted per task type (created, completed, retried,
 * dead-lettered by reason, p50/p95 time from its run time to completion), a summary of
 * what the sandbox saw, and the verdict: every task accounted for, or how many are not.
 *
 * The provider scenarios (rate-limit, outage) add, to each progress line, every destination's
 * requests in the last second and its circuit's state (`resend 3/s closed`), and to the summary
 * a table of what each destination saw (requests, 2xx, 429, 5xx, the most in any second, its
 * limit) and the line that proves the outcome: nothing exhausted because of the provider.
 */
import type { Writable } from 'node:stream';
import { table } from '../../src/cli/io.js';
import type { TaskStatus } from '../../src/ops/status.js';
import type { DeadLetterReason } from '../../src/redis/dead-letter-queue.js';
import { type TaskType, taskTypes } from '../../src/tasks/catalog.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { DemoPlan } from './demo-plan.js';
import type { DemoTask, DestinationView, Settled } from './demo-run.js';

type Row = { created: number; completed: number; retried: number; durations: number[] } & Record<
  DeadLetterReason,
  number
>;

export interface Accounting {
  created: number;
  rows: Record<TaskType, Row>;
  /** Tasks neither completed nor dead-lettered with a reason. */
  unaccounted: number;
}

const bar = (done: number, total: number, width = 30): string => {
  const filled = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}`;
};

const percentile = (values: number[], p: number) => {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)}s`);

export const startLine = (plan: DemoPlan, redis: string): string =>
  `aftercall demo ${plan.runId}: ${plan.outcomes.length} conversations, ${plan.workers} worker processes, ${redis}, key prefix ${plan.prefix}`;

export const sandboxLine = (plan: DemoPlan, sandbox: Sandbox): string => {
  if (plan.scenario === 'rate-limit') {
    const limit = sandbox.faults().limits.resend;
    return `sandbox at ${sandbox.url}; scenario rate-limit: Resend allows ${limit?.limit} requests per ${(limit?.windowMs ?? 1_000) / 1_000} s, answering 429 above it; no random faults`;
  }
  if (plan.scenario === 'outage')
    return `sandbox at ${sandbox.url}; scenario outage: Resend answers 503 to everything for ${plan.outageSeconds}s from now; no random faults`;
  return `sandbox at ${sandbox.url}; fault burst for ${plan.burstSeconds}s: ${Math.round(plan.faultRate * 100)}% of provider requests fail`;
};

/** `resend 3/s closed  twilio 5/s closed  webhook:update_crm 0/s open` */
export const destinationsLine = (destinations: readonly DestinationView[]): string =>
  destinations.map((view) => `${view.destination} ${view.perSecond}/s ${view.state}`).join('  ');

export const enqueuedLine = (created: number, conversations: number, ms: number): string =>
  `enqueued ${created} tasks from ${conversations} conversations in ${ms} ms`;

/** Progress while the fleet works: `update` on each poll, `done` once at the end. */
export function progressPrinter(
  stdout: Writable & { isTTY?: boolean },
  created: number,
): { update(settled: Settled): void; done(settled: Settled, elapsedMs: number): void } {
  const interactive = Boolean(stdout.isTTY);
  let lastPrinted = 0;
  return {
    update(settled) {
      const perType =
        taskTypes
          .map((type) => `${type} ${settled.byType[type].completed + settled.byType[type].deadLettered}`)
          .join('  ') + (settled.destinations ? ` | ${destinationsLine(settled.destinations)}` : '');
      if (interactive) stdout.write(`\r${bar(settled.total, created)}  ${perType}   `);
      else if (Date.now() - lastPrinted > 2_000) {
        stdout.write(`${bar(settled.total, created)}  ${perType}\n`);
        lastPrinted = Date.now();
      }
    },
    done(settled, elapsedMs) {
      if (interactive) stdout.write('\n');
      stdout.write(`${bar(settled.total, created)} settled in ${(elapsedMs / 1000).toFixed(1)} s\n`);
    },
  };
}

/** Every task's final state, counted per type. */
export function account(tasks: DemoTask[], statuses: Map<string, TaskStatus>): Accounting {
  const rows = Object.fromEntries(
    taskTypes.map((type) => [
      type,
      {
        created: 0,
        completed: 0,
        retried: 0,
        durations: [],
        expired: 0,
        exhausted: 0,
        terminal: 0,
        invalid: 0,
      } as Row,
    ]),
  ) as Record<TaskType, Row>;
  let unaccounted = 0;
  for (const task of tasks) {
    const row = rows[task.type];
    row.created += 1;
    const status = statuses.get(`${task.type}/${task.jobId}`);
    if (!status) {
      unaccounted += 1;
      continue;
    }
    if (status.attempts > 1) row.retried += 1;
    if (status.state === 'completed') {
      row.completed += 1;
      if (status.finishedAt) row.durations.push(Date.parse(status.finishedAt) - Date.parse(task.runAt));
    } else if (status.state === 'dead_lettered' && status.deadLetterReason) {
      row[status.deadLetterReason] += 1;
    } else {
      unaccounted += 1;
    }
  }
  return { created: tasks.length, rows, unaccounted };
}

/** The table per task type. */
export function accountingTable({ rows }: Accounting): string {
  return table(
    taskTypes.map((type) => {
      const row = rows[type];
      return {
        type,
        created: row.created,
        completed: row.completed,
        retried: row.retried,
        expired: row.expired,
        exhausted: row.exhausted,
        terminal: row.terminal,
        invalid: row.invalid,
        p50: seconds(percentile(row.durations, 50)),
        p95: seconds(percentile(row.durations, 95)),
      };
    }),
    ['type', 'created', 'completed', 'retried', 'expired', 'exhausted', 'terminal', 'invalid', 'p50', 'p95'],
  );
}

/** What the sandbox saw: requests per provider, faults injected, deliveries and unique idempotency keys. */
export function sandboxSummary(sandbox: Sandbox): string {
  const stats = sandbox.stats();
  const deliveries = sandbox.deliveries();
  const uniqueKeys = new Set(deliveries.map((delivery) => `${delivery.provider}/${delivery.idempotencyKey}`)).size;
  return (
    `sandbox: ${stats.requests} provider requests (${Object.entries(stats.byProvider)
      .map(([provider, count]) => `${provider} ${count}`)
      .join(', ')}); ` +
    `faults injected: ${stats.faults.rateLimited} rate limits, ${stats.faults.serverErrors} server errors, ${stats.faults.hung} hung requests, ${stats.faults.terminal} refused recipients; ` +
    `${deliveries.length} deliveries recorded, ${uniqueKeys} unique idempotency keys`
  );
}

/** What each destination saw, from the sandbox's side: the provider scenarios' proof that the fleet kept to it. */
export function destinationsTable(sandbox: Sandbox): string {
  const { destinations } = sandbox.traffic();
  return table(
    Object.entries(destinations)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([destination, traffic]) => ({
        destination,
        requests: traffic.requests,
        '2xx': traffic.ok,
        '429': traffic.rateLimited,
        '5xx': traffic.serverErrors,
        'max in any second':
          traffic.sliding.windowMs === 1_000 ? traffic.sliding.maxRequests : traffic.maxPerSecond.requests,
        limit: traffic.limit
          ? `${traffic.limit.limit}/${traffic.limit.windowMs === 1_000 ? 's' : `${traffic.limit.windowMs}ms`}`
          : '-',
        'during outage': traffic.duringOutage,
      })),
    ['destination', 'requests', '2xx', '429', '5xx', 'max in any second', 'limit', 'during outage'],
  );
}

/** Tasks that used up their attempts: in a provider scenario, the provider's doing. */
export const exhaustedCount = ({ rows }: Accounting): number =>
  taskTypes.reduce((sum, type) => sum + rows[type].exhausted, 0);

/** The provider scenarios' verdict: nothing exhausted because of the provider, or how many were. */
export const providerVerdictLine = (accounting: Accounting): string => {
  const exhausted = exhaustedCount(accounting);
  return exhausted > 0
    ? `${exhausted} tasks exhausted their attempts against the provider`
    : 'nothing exhausted because of the provider: 0 tasks used up their attempts; waiting for the limit or the circuit used none';
};

/** The last line: every task accounted for, or how many are not. */
export const verdictLine = ({ created, unaccounted }: Accounting): string =>
  unaccounted > 0
    ? `${unaccounted} of ${created} tasks are not accounted for (neither completed nor dead-lettered)`
    : `every one of the ${created} tasks is accounted for: completed, or dead-lettered with a reason`;
