/** `aftercall config`: the environment variables, their defaults, and whether the current environment is valid. */
import { configVariables, loadConfig } from '../../config/environment.js';
import { httpVariableDocs, loadHttpConfig } from '../../http/environment.js';
import { defineCommand } from '../command.js';
import { table } from '../io.js';

export const command = defineCommand({
  name: 'config',
  synopsis: ['aftercall config'],
  summary: "List the environment variables, their defaults and current values' validity.",
  options: {},
  run(_args, { io }) {
    io.stdout.write(
      table(configVariables() as unknown as Record<string, unknown>[], ['name', 'default', 'description'], 110),
    );
    // Read by `aftercall serve` and `aftercall ingest` only (the HTTP API and its platform receivers).
    const http = Object.entries(httpVariableDocs).map(([name, [fallback, description]]) => ({
      name,
      default: fallback,
      description,
    }));
    io.stdout.write(`\naftercall serve and aftercall ingest:\n${table(http, ['name', 'default', 'description'], 110)}`);
    try {
      loadConfig(io.env);
      loadHttpConfig(io.env);
      io.stdout.write('\nThe current environment is valid.\n');
      return 0;
    } catch (error) {
      io.stdout.write(`\n${(error as Error).message}\n`);
      return 1;
    }
  },
});
