/**
 * The `aftercall` command: `aftercall <command> [options]`, one module per command.
 *
 * COMMANDS lists them in the order `aftercall --help` shows them; each is loaded with
 * import() only when it runs (or for the overview help), so `aftercall enqueue` does not
 * load the worker, and dev/ (sandbox, demo) stays out of every static import. Adding a
 * command: one module exporting `command = defineCommand({...})` (command.ts) and one line
 * here. Arguments are parsed and checked in args.ts; command.ts runs a command and maps its
 * errors to exit codes (2 bad arguments, 1 bad environment or failure, 0 success).
 *
 * Configuration comes from environment variables (see `aftercall config`), validated when
 * a command first needs it: a bad value exits 1 naming the variable.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../config/package-root.js';
import { taskTypes } from '../tasks/catalog.js';
import { type Command, commandContext, commandOverview, runCommand } from './command.js';
import { type CommandIO, processIO } from './io.js';

const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  demo: () => import('../../dev/demo/demo.js'),
  sandbox: () => import('../../dev/sandbox/sandbox-command.js'),
  worker: () => import('./commands/worker.js'),
  enqueue: () => import('./commands/enqueue.js'),
  status: () => import('./commands/status.js'),
  dlq: () => import('./commands/dlq.js'),
  circuit: () => import('./commands/circuit.js'),
  serve: () => import('./commands/serve.js'),
  ingest: () => import('./commands/ingest.js'),
  sweep: () => import('./commands/sweep.js'),
  config: () => import('./commands/config.js'),
};

async function overview(): Promise<string> {
  const commands = await Promise.all(Object.values(COMMANDS).map(async (load) => (await load()).command));
  return `aftercall: durable, idempotent, expiring follow-up work for voice agents

Usage:
${commands.map(commandOverview).join('')}
Task types: ${taskTypes.join(', ')}
`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: CommandIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    io.stdout.write(await overview());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    io.stderr.write(`aftercall: unknown command ${JSON.stringify(name)}\n\n${await overview()}`);
    return 2;
  }
  return runCommand((await load()).command, rest, commandContext(io));
}
