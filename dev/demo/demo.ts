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
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AftercallConfig } from '../../src/config/environment.js';
import { readFleetState } from '../../src/redis/fleet-state.js';
import { createProducer, type EnqueuedTask } from '../../src/producer/producer.js';
import { createRedisConnection, describeRedisTarget } from '../../src/redis/connection.js';
import { typeKeys } from '../../src/redis/keys.js';
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../../src/redis/dead-letter-queue.js';
import type { RedisClient } from '../../src/redis/scripts.js';
import { startSandbox, type Sandbox } from '../sandbox/sandbox.js';
import { conversationStatus } from '../../src/ops/status.js';
import { refusedRecipients, syntheticOutcome } from '../synthetic-load.js';
import { taskTypes, type TaskType } from '../../src/tasks/catalog.js';
import { table, type CommandIO } from '../../src/cli/io.js';
import { sandboxEnvironment } from '../sandbox/sandbox-command.js';
import { packageRoot } from '../../src/config/package-root.js';

const BIN = join(packageRoot(), 'bin', 'aftercall.js');

export const DEMO_HELP = `aftercall demo: the whole fleet on one machine (needs only Redis at REDIS_URL)

Options:
  --conversations N     conversations in the synthetic load (default 200)
  --bad-recipients F    share of customers whose e-mail/phone the providers refuse (default 0.05)
  --late F              share of conversations that ended 45 minutes ago (their e-mail expired) (default 0.03)
  --fault-rate F        share of provider requests failing during the fault burst (default 0.3)
  --burst-seconds S     length of the fault burst at the start (default 3)
  --workers N           worker processes (default 2)
  --timeout S           give up waiting after S seconds (default 120)
  --keep                keep the demo's Redis keys (prefix printed at the start)
  --help                this text
`;

/**
 * How the burst's failing share `faultRate` (0..1) splits: 45 % rate limits, 45 % server
 * errors, 10 % requests that hang past the client timeout; together exactly `faultRate`.
 */
export function burstFaults(faultRate: number): { rateLimitRate: number; serverErrorRate: number; hangRate: number } {
  return { rateLimitRate: faultRate * 0.45, serverErrorRate: faultRate * 0.45, hangRate: faultRate * 0.1 };
}

interface DemoOptions {
  conversations: number;
  badRecipients: number;
  late: number;
  faultRate: number;
  burstSeconds: number;
  workers: number;
  timeoutSeconds: number;
  keep: boolean;
}

class UsageError extends Error {}

function parseDemoArgs(args: string[]): DemoOptions | 'help' {
  const { values } = parseArgs({
    args,
    options: {
      conversations: { type: 'string' },
      'bad-recipients': { type: 'string' },
      late: { type: 'string' },
      'fault-rate': { type: 'string' },
      'burst-seconds': { type: 'string' },
      workers: { type: 'string' },
      timeout: { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const number = (name: keyof typeof values, fallback: number, min: number, max: number, integer: boolean) => {
    const text = values[name];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new UsageError(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    return value;
  };
  return {
    conversations: number('conversations', 200, 1, 100_000, true),
    badRecipients: number('bad-recipients', 0.05, 0, 1, false),
    late: number('late', 0.03, 0, 1, false),
    faultRate: number('fault-rate', 0.3, 0, 1, false),
    burstSeconds: number('burst-seconds', 3, 0, 600, false),
    workers: number('workers', 2, 1, 16, true),
    timeoutSeconds: number('timeout', 120, 1, 3_600, false),
    keep: values.keep ?? false,
  };
}

function startWorkers(count: number, env: Record<string, string>): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, [BIN, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] }),
  );
}

async function stopWorkers(workers: ChildProcess[]): Promise<void> {
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.exitCode !== null) return resolve();
          const timer = setTimeout(() => worker.kill('SIGKILL'), 30_000);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          worker.kill('SIGTERM');
        }),
    ),
  );
}

async function removeKeys(client: RedisClient, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await (client as import('ioredis').Redis).scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

interface Settled {
  total: number;
  byType: Record<TaskType, { completed: number; deadLettered: number }>;
}

async function progress(client: RedisClient, prefix: string): Promise<Settled> {
  const [state, completed] = await Promise.all([
    readFleetState(client, prefix),
    Promise.all(taskTypes.map((type) => client.zcard(typeKeys(prefix, type).completed))),
  ]);
  const byType = {} as Settled['byType'];
  let total = 0;
  taskTypes.forEach((type, index) => {
    const deadLettered = DEAD_LETTER_REASONS.reduce((sum, reason) => sum + state.deadLetters[type][reason], 0);
    byType[type] = { completed: completed[index]!, deadLettered };
    total += completed[index]! + deadLettered;
  });
  return { total, byType };
}

function bar(done: number, total: number, width = 30): string {
  const filled = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}`;
}

const percentile = (values: number[], p: number) => {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};
const seconds = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)}s`);

export async function demoCommand(args: string[], config: AftercallConfig, io: CommandIO): Promise<number> {
  let options: DemoOptions | 'help';
  try {
    options = parseDemoArgs(args);
  } catch (error) {
    io.stderr.write(`aftercall demo: ${(error as Error).message}\n`);
    return 2;
  }
  if (options === 'help') {
    io.stdout.write(DEMO_HELP);
    return 0;
  }

  const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-demo' });
  const reachable = await Promise.race([
    client.ping().then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2_000).unref()),
  ]);
  if (!reachable) {
    client.disconnect();
    io.stderr.write(
      `aftercall demo: no Redis answers (${describeRedisTarget(config.redis)}); start one with \`redis-server\` (or \`docker compose up -d redis\`), or set REDIS_URL.\n`,
    );
    return 1;
  }

  const runId = randomBytes(3).toString('hex');
  const prefix = `aftercall-demo-${runId}`;
  const out = (line: string) => io.stdout.write(`${line}\n`);
  out(
    `aftercall demo ${runId}: ${options.conversations} conversations, ${options.workers} worker processes, ${describeRedisTarget(config.redis)}, key prefix ${prefix}`,
  );

  const load = {
    runId: `demo-${runId}`,
    now: Date.now(),
    refusedShare: options.badRecipients,
    lateShare: options.late,
  };
  const outcomes = Array.from({ length: options.conversations }, (_, index) => syntheticOutcome(index, load));
  const badRecipients = refusedRecipients(options.conversations, load);

  let sandbox: Sandbox | undefined;
  let workers: ChildProcess[] = [];
  const producer = createProducer({
    redis: config.redis,
    prefix,
    // The survey normally waits 2 hours; the demo sends it at once.
    tasks: { follow_up_survey: { settings: { delay: 0 } } },
  });
  try {
    sandbox = await startSandbox({
      port: 0,
      seed: 42,
      faults: {
        ...burstFaults(options.faultRate),
        retryAfterSeconds: 1,
        hangMs: 3_000,
        latencyMs: { min: 5, max: 40, tailRate: 0.02, tailMs: 400 },
        terminalRecipients: badRecipients,
      },
    });
    out(
      `sandbox at ${sandbox.url}; fault burst for ${options.burstSeconds}s: ${Math.round(options.faultRate * 100)}% of provider requests fail`,
    );
    const env: Record<string, string> = {
      // The workers inherit this process' Redis variables (any mode); a standalone default is made explicit.
      ...(config.redis.mode === 'standalone' && { REDIS_URL: config.redis.url }),
      AFTERCALL_PREFIX: prefix,
      ...Object.fromEntries(sandboxEnvironment(sandbox)),
      RESEND_API_KEY: 're_demo_key',
      EMAIL_FROM: 'aftercall demo <demo@aftercall.example>',
      TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`,
      TWILIO_AUTH_TOKEN: 'demo-token',
      TWILIO_FROM: '+14155550000',
      WEBHOOK_TIMEOUT: '2s',
      RETRY_BASE_DELAY: '200ms',
      RETRY_MAX_DELAY: '2s',
      RETRY_JITTER: '200ms',
      SWEEP_INTERVAL: '1s',
      METRICS_PORT: '0',
      LOG_LEVEL: 'warn',
      WORKER_CONCURRENCY: '20',
    };
    workers = startWorkers(options.workers, env);
    const workerErrors: string[] = [];
    for (const worker of workers)
      worker.stderr!.on('data', (chunk: Buffer) => workerErrors.push(chunk.toString('utf8')));

    const tasks: (EnqueuedTask & { conversationId: string })[] = [];
    const started = Date.now();
    for (const outcome of outcomes) {
      const result = await producer.conversationEnded(outcome);
      tasks.push(...result.tasks.map((task) => ({ ...task, conversationId: result.conversationId })));
    }
    const burst = setTimeout(
      () => sandbox?.setFaults({ rateLimitRate: 0, serverErrorRate: 0, hangRate: 0 }),
      options.burstSeconds * 1_000,
    );
    const created = tasks.length;
    out(`enqueued ${created} tasks from ${outcomes.length} conversations in ${Date.now() - started} ms`);

    const deadline = Date.now() + options.timeoutSeconds * 1_000;
    let settled = await progress(client, prefix);
    const interactive = 'isTTY' in io.stdout && (io.stdout as { isTTY?: boolean }).isTTY;
    let lastPrinted = 0;
    while (settled.total < created && Date.now() < deadline && workers.some((worker) => worker.exitCode === null)) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      settled = await progress(client, prefix);
      const perType = taskTypes
        .map((type) => `${type} ${settled.byType[type].completed + settled.byType[type].deadLettered}`)
        .join('  ');
      if (interactive) io.stdout.write(`\r${bar(settled.total, created)}  ${perType}   `);
      else if (Date.now() - lastPrinted > 2_000) {
        out(`${bar(settled.total, created)}  ${perType}`);
        lastPrinted = Date.now();
      }
    }
    clearTimeout(burst);
    if (interactive) io.stdout.write('\n');
    out(`${bar(settled.total, created)} settled in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The accounting: every task's final state.
    type Row = { created: number; completed: number; retried: number; durations: number[] } & Record<
      DeadLetterReason,
      number
    >;
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
    const statusByJob = new Map<string, Awaited<ReturnType<typeof conversationStatus>>[number]>();
    for (const outcome of outcomes) {
      for (const entry of await conversationStatus(client, prefix, outcome.conversationId))
        statusByJob.set(`${entry.type}/${entry.jobId}`, entry);
    }
    for (const task of tasks) {
      const row = rows[task.type];
      row.created += 1;
      const status = statusByJob.get(`${task.type}/${task.jobId}`);
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
    out('');
    io.stdout.write(
      table(
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
      ),
    );
    const stats = sandbox.stats();
    const deliveries = sandbox.deliveries();
    const uniqueKeys = new Set(deliveries.map((delivery) => `${delivery.provider}/${delivery.idempotencyKey}`)).size;
    out('');
    out(
      `sandbox: ${stats.requests} provider requests (${Object.entries(stats.byProvider)
        .map(([provider, count]) => `${provider} ${count}`)
        .join(', ')}); ` +
        `faults injected: ${stats.faults.rateLimited} rate limits, ${stats.faults.serverErrors} server errors, ${stats.faults.hung} hung requests, ${stats.faults.terminal} refused recipients; ` +
        `${deliveries.length} deliveries recorded, ${uniqueKeys} unique idempotency keys`,
    );
    if (unaccounted > 0) {
      out(`${unaccounted} of ${created} tasks are not accounted for (neither completed nor dead-lettered)`);
      if (workerErrors.length) io.stderr.write(workerErrors.join('').slice(-2_000));
      return 1;
    }
    out(`every one of the ${created} tasks is accounted for: completed, or dead-lettered with a reason`);
    if (options.keep) out(`keys kept: AFTERCALL_PREFIX=${prefix} npx aftercall dlq list`);
    return 0;
  } finally {
    await stopWorkers(workers);
    await producer.close();
    await sandbox?.close();
    if (!options.keep) await removeKeys(client, prefix).catch(() => undefined);
    client.disconnect();
  }
}
