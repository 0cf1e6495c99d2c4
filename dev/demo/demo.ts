/**
 * `aftercall demo`: the whole fleet on one machine, with only Redis.
 *
 * It starts the provider sandbox (fake Resend, Twilio and webhook receiver), two worker
 * processes (which also run the expiry sweeper), and a synthetic voice-agent load: by
 * default 200 conversations over every outcome kind, a share of them with recipients the
 * providers refuse, a few that ended too long ago to be worth an e-mail, and a short
 * burst of provider faults (rate limits, server errors, requests that hang past the
 * client timeout). It shows progress while the fleet works, then a table per task type:
 * created, completed, retried, dead-lettered by reason, and p50/p95 time from creation to
 * completion. Exit code 0 when every task is accounted for (completed, or dead-lettered
 * with a reason), 1 otherwise.
 *
 * It works under a key prefix of its own and removes its keys at the end (--keep keeps
 * them for `aftercall status` and `aftercall dlq list` with AFTERCALL_PREFIX set).
 *
 * --scenario rate-limit and --scenario outage replace the burst with a provider that behaves
 * like one: Resend at a standing limit of 3 requests per second (the fleet configured with
 * it), or Resend down for --outage-seconds (default 25). The progress shows each
 * destination's requests per second and circuit state; the summary adds what each
 * destination saw and the verdict "nothing exhausted because of the provider" (exit code 1
 * when something was).
 *
 * This module wires three others: demo-plan.ts (options, load, faults, worker environment),
 * demo-run.ts (Redis, sandbox, workers, enqueue, wait, clean up) and demo-report.ts (what
 * is printed).
 */
import { randomBytes } from 'node:crypto';
import { defineCommand } from '../../src/cli/command.js';
import { describeRedisTarget } from '../../src/redis/connection.js';
import { DEMO_HELP, demoOptions, planDemo } from './demo-plan.js';
import { startFleet } from './demo-run.js';
import {
  account,
  accountingTable,
  destinationsTable,
  enqueuedLine,
  exhaustedCount,
  progressPrinter,
  providerVerdictLine,
  sandboxLine,
  sandboxSummary,
  startLine,
  verdictLine,
} from './demo-report.js';

export const command = defineCommand({
  name: 'demo',
  synopsis: ['aftercall demo [--scenario burst|rate-limit|outage] [--conversations N] [--help]'],
  summary: `The whole fleet on one machine with only Redis: a provider sandbox, two worker
processes and a synthetic voice-agent load; ends with a table per task type.`,
  help: DEMO_HELP,
  options: demoOptions,
  async run({ values }, context) {
    const runId = randomBytes(3).toString('hex');
    const plan = planDemo(values, runId, Date.now());
    const config = context.config();
    const out = (line: string) => context.io.stdout.write(`${line}\n`);

    const fleet = await startFleet(plan, config);
    try {
      out(startLine(plan, describeRedisTarget(config.redis)));
      out(sandboxLine(plan, fleet.sandbox));
      const started = Date.now();
      const tasks = await fleet.enqueue();
      out(enqueuedLine(tasks.length, plan.outcomes.length, Date.now() - started));
      const progress = progressPrinter(context.io.stdout, tasks.length);
      const settled = await fleet.waitUntilSettled(tasks.length, progress.update);
      progress.done(settled, Date.now() - started);

      const accounting = account(tasks, await fleet.statuses());
      out('');
      context.io.stdout.write(accountingTable(accounting));
      out('');
      out(sandboxSummary(fleet.sandbox));
      const scenario = plan.scenario !== 'burst';
      if (scenario) {
        out('');
        context.io.stdout.write(destinationsTable(fleet.sandbox));
        out('');
        out(providerVerdictLine(accounting));
      }
      out(verdictLine(accounting));
      if (accounting.unaccounted > 0 || (scenario && exhaustedCount(accounting) > 0)) {
        const errors = fleet.workerErrors();
        if (errors) context.io.stderr.write(errors);
        return 1;
      }
      if (plan.keep) out(`keys kept: AFTERCALL_PREFIX=${plan.prefix} npx aftercall dlq list`);
      return 0;
    } finally {
      await fleet.stop();
    }
  },
});
