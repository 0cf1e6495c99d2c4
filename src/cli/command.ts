/**
 * What an `aftercall` command is, and the one place that runs it.
 *
 * A command is one module exporting `command = defineCommand({...})`: its name, its
 * synopsis and summary (for `aftercall --help`), its options (util.parseArgs specs), and
 * `run`. Adding one means that file plus one line in main.ts's COMMANDS.
 *
 * runCommand gives every command the same behaviour around `run`:
 *   - `--help` / `-h` prints the command's help (its own `help` text, or synopsis and summary), exit 0;
 *   - bad arguments (a UsageError, args.ts): `aftercall <name>: <message>` and a pointer to --help, exit 2;
 *   - a bad environment (ConfigError) or other invalid input (ValidationError): `aftercall: <message>`, exit 1;
 *   - any other error: `aftercall <name>: <message>`, exit 1.
 * Otherwise the exit code is what `run` returns.
 */
import { type AftercallConfig, loadConfig } from '../config/environment.js';
import { ValidationError } from '../contract/validation-error.js';
import { type OptionSpecs, type ParsedArgs, parseCommandArgs, UsageError } from './args.js';
import type { CommandIO } from './io.js';

export interface CommandContext {
  io: CommandIO;
  /** The configuration from `io.env`, loaded and validated on first call (a ConfigError exits 1 naming the variable). */
  config(): AftercallConfig;
  /** When it aborts, a long-running command stops as on SIGTERM (tests and embedding). */
  signal?: AbortSignal | undefined;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  name: string;
  /** Usage lines, without indentation: `aftercall status <conversationId> [--json]`. */
  synopsis: string[];
  /** What it does, in a few lines of at most 90 characters. */
  summary: string;
  /** The full text of `aftercall <name> --help`, when synopsis and summary are not enough. */
  help?: string;
  options: O;
  /** Whether it takes positional arguments (default: no, and one is a usage error). */
  positionals?: boolean;
  // A method, so that a command with its own options is a Command<OptionSpecs> in main.ts's list.
  run(args: ParsedArgs<O>, context: CommandContext): Promise<number> | number;
}

export const defineCommand = <O extends OptionSpecs>(command: Command<O>): Command<O> => command;

/** The context a command runs in: `io`, and the configuration read from `io.env` when first asked for. */
export function commandContext(io: CommandIO, signal?: AbortSignal): CommandContext {
  let config: AftercallConfig | undefined;
  return {
    io,
    signal,
    config: () => {
      config ??= loadConfig(io.env);
      return config;
    },
  };
}

const indent = (text: string, spaces: number) =>
  text
    .split('\n')
    .map((line) => `${' '.repeat(spaces)}${line}`)
    .join('\n');

/** The command's entry in `aftercall --help`. */
export const commandOverview = (command: Command): string =>
  `${indent(command.synopsis.join('\n'), 2)}\n${indent(command.summary, 6)}\n`;

export const commandHelp = (command: Command): string => command.help ?? `Usage:\n${commandOverview(command)}`;

export async function runCommand(command: Command, argv: string[], context: CommandContext): Promise<number> {
  const { io } = context;
  try {
    const args = parseCommandArgs(
      argv,
      { ...command.options, help: { type: 'boolean', short: 'h' } },
      command.positionals ?? false,
    );
    if (args.values.help) {
      io.stdout.write(commandHelp(command));
      return 0;
    }
    return await command.run(args, context);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`aftercall ${command.name}: ${error.message}\n(see aftercall ${command.name} --help)\n`);
      return 2;
    }
    if (error instanceof ValidationError) {
      io.stderr.write(`aftercall: ${error.message}\n`);
      return 1;
    }
    io.stderr.write(`aftercall ${command.name}: ${(error as Error).message}\n`);
    return 1;
  }
}
