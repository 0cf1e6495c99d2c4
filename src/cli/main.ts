/**
 * The `aftercall` command.
 *
 *   aftercall demo [options]
 *   aftercall sandbox [--port P] [fault options]
 *   aftercall worker [--queues a,b] [--concurrency N] [--no-sweeper]
 *   aftercall enqueue [--shift-to-now] [FILE|-]
 *   aftercall status <conversationId> [--json]
 *   aftercall dlq list|replay|purge ...
 *   aftercall sweep
 *   aftercall config
 *
 * Configuration comes from environment variables (see `aftercall config`), validated at
 * start: a bad value exits 1 naming the variable.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../config/package-root.js';
import { configVariables, ConfigError, loadConfig, type AftercallConfig } from '../config/environment.js';
import { dlqCommand } from './commands/dlq.js';
import { enqueueCommand } from './commands/enqueue.js';
import { processIO, table, type CommandIO } from './io.js';
import { statusCommand } from './commands/status.js';
import { sweepExpiredJobs } from '../worker/expiry-sweeper.js';
import { createLogger } from '../worker/logger.js';
import { createRedisConnection } from '../redis/connection.js';
import { isTaskType, taskTypes, type TaskType } from '../tasks/catalog.js';
import { ValidationError } from '../contract/validation-error.js';
import { startWorker } from '../worker/worker.js';

const HELP = `aftercall: durable, idempotent, expiring follow-up work for voice agents

Usage:
  aftercall demo [--conversations N] [--help]
      The whole fleet on one machine with only Redis: a provider sandbox, two worker
      processes and a synthetic voice-agent load; ends with a table per task type.
  aftercall sandbox [--port 4010] [--help]
      Local fakes of Resend, Twilio and a Standard Webhooks receiver, with fault injection.
  aftercall worker [--queues ${taskTypes.slice(0, 2).join(',')}] [--concurrency N] [--no-sweeper]
      Run one worker process for the given task types (default: all that are on).
      Concurrency is per queue. Stops cleanly on SIGTERM/SIGINT.
  aftercall enqueue [--shift-to-now] [FILE|-]
      Enqueue outcomes: one JSON outcome, a JSON array, or NDJSON (default: stdin).
      Prints one JSON result per accepted outcome; rejected ones go to stderr with
      their line number and field errors; exits 1 if any was rejected.
      --shift-to-now moves each outcome's times so that it ends now (for examples).
  aftercall status <conversationId> [--json]
      The tasks of a conversation and their states.
  aftercall dlq list [--type T] [--reason R] [--limit N] [--json]
  aftercall dlq replay --type T (--job ID | --all [--reason R]) [--extend DURATION]
  aftercall dlq purge --type T (--job ID | --all [--reason R])
      Inspect, replay or delete dead-lettered tasks (reasons: expired, exhausted,
      terminal, invalid).
  aftercall sweep
      Run one expiry sweep now (workers run it every SWEEP_INTERVAL anyway).
  aftercall config
      List the environment variables, their defaults and current values' validity.

Task types: ${taskTypes.join(', ')}
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

async function workerCommand(args: string[], config: AftercallConfig, io: CommandIO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { queues: { type: 'string' }, concurrency: { type: 'string' }, 'no-sweeper': { type: 'boolean' } },
    strict: true,
  });
  let queues: TaskType[] | undefined;
  if (values.queues !== undefined) {
    const names = values.queues
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    const unknown = names.filter((name) => !isTaskType(name));
    if (unknown.length || !names.length) {
      io.stderr.write(
        `aftercall worker: --queues: unknown task type ${unknown.join(', ') || '(none given)'}; expected some of ${taskTypes.join(', ')}\n`,
      );
      return 2;
    }
    queues = names as TaskType[];
  }
  let concurrency: number | undefined;
  if (values.concurrency !== undefined) {
    concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
      io.stderr.write('aftercall worker: --concurrency: expected an integer from 1 to 1000\n');
      return 2;
    }
  }
  const logger = createLogger({ level: config.logLevel });
  const worker = await startWorker({
    config,
    logger,
    ...(queues && { queues }),
    ...(concurrency && { concurrency }),
    ...(values['no-sweeper'] && { sweeper: false }),
  });
  await worker.ready;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutdown requested');
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      void worker.close().then(resolve);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  logger.flush();
  return 0;
}

async function sweepCommand(config: AftercallConfig, io: CommandIO): Promise<number> {
  const client = createRedisConnection('worker', { url: config.redisUrl, name: 'aftercall-sweep' });
  try {
    const result = await sweepExpiredJobs(client, { prefix: config.prefix, batchSize: config.sweeper.batchSize });
    io.stdout.write(
      `${JSON.stringify({ expired: result.expired, dropped: result.dropped, durationMs: Math.round(result.durationMs) })}\n`,
    );
    return 0;
  } finally {
    client.disconnect();
  }
}

function configCommand(io: CommandIO): number {
  io.stdout.write(
    table(configVariables() as unknown as Record<string, unknown>[], ['name', 'default', 'description'], 110),
  );
  try {
    loadConfig(io.env);
    io.stdout.write('\nThe current environment is valid.\n');
    return 0;
  } catch (error) {
    io.stdout.write(`\n${(error as Error).message}\n`);
    return 1;
  }
}

export async function main(argv: string[], io: CommandIO = processIO()): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.stdout.write(HELP);
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-v') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === 'config') return configCommand(io);
  if (command === 'sandbox') return (await import('../../dev/sandbox/sandbox-command.js')).sandboxCommand(rest, io);
  let config: AftercallConfig;
  try {
    config = loadConfig(io.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`aftercall: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  try {
    switch (command) {
      case 'worker':
        return await workerCommand(rest, config, io);
      case 'enqueue':
        return await enqueueCommand(rest, config, io);
      case 'status': {
        const { values, positionals } = parseArgs({
          args: rest,
          options: { json: { type: 'boolean' } },
          allowPositionals: true,
        });
        return await statusCommand(positionals[0], values.json ?? false, config, io);
      }
      case 'dlq': {
        const { values, positionals } = parseArgs({
          args: rest,
          options: {
            type: { type: 'string' },
            reason: { type: 'string' },
            job: { type: 'string' },
            all: { type: 'boolean' },
            limit: { type: 'string' },
            extend: { type: 'string' },
            json: { type: 'boolean' },
          },
          allowPositionals: true,
        });
        return await dlqCommand({ action: positionals[0], ...values }, config, io);
      }
      case 'sweep':
        return await sweepCommand(config, io);
      case 'demo':
        return await (await import('../../dev/demo/demo.js')).demoCommand(rest, config, io);
      default:
        io.stderr.write(`aftercall: unknown command ${JSON.stringify(command)}\n\n${HELP}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof ValidationError) {
      io.stderr.write(`aftercall: ${error.message}\n`);
      return 1;
    }
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`aftercall ${command}: ${error.message}\n`);
      return 2;
    }
    io.stderr.write(`aftercall ${command}: ${(error as Error).message}\n`);
    return 1;
  }
}
