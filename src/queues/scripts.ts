/**
 * aftercall's Lua scripts, used only where atomicity needs them: dead-lettering a job
 * (taking it out of its queue and into the dead-letter store in one step), writing a job
 * together with its expiry-index entry, and moving a booking's reminder.
 *
 * Each script is a file in ./lua, with lua/helpers.lua put in front of it. They are
 * registered on a connection with ioredis' defineCommand (EVALSHA, falling back to EVAL),
 * and then usable on the connection and on its pipelines and transactions.
 */
import { readFileSync } from 'node:fs';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;

const SCRIPTS = {
  prepareAdd: 'prepare-add.lua',
  expireJobs: 'expire-jobs.lua',
  deadLetterActive: 'dead-letter-active.lua',
  claimScope: 'claim-scope.lua',
  settleScope: 'settle-scope.lua',
  replayDeadLetter: 'replay-dead-letter.lua',
  purgeDeadLetter: 'purge-dead-letter.lua',
} as const;

export type ScriptName = keyof typeof SCRIPTS;
type Arg = string | number;

const commandName = (name: ScriptName) => `aftercall_${name}`;
const readLua = (file: string) => readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');

let sources: Map<ScriptName, string> | undefined;
function loadSources(): Map<ScriptName, string> {
  if (!sources) {
    const helpers = readLua('helpers.lua');
    sources = new Map(
      (Object.entries(SCRIPTS) as [ScriptName, string][]).map(([name, file]) => [name, `${helpers}\n${readLua(file)}`]),
    );
  }
  return sources;
}

const defined = new WeakSet<object>();

/** Registers the scripts on a connection (once per connection). */
export function defineScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  for (const [name, lua] of loadSources()) {
    client.defineCommand(commandName(name), { numberOfKeys: 1, lua });
  }
  defined.add(client);
}

type ScriptMethod<R> = (key: string, ...args: Arg[]) => R;

function method<R>(target: object, name: ScriptName): ScriptMethod<R> {
  const fn = (target as Record<string, unknown>)[commandName(name)];
  if (typeof fn !== 'function') {
    throw new Error(`aftercall script ${name} is not defined on this connection; call defineScripts() first`);
  }
  return (fn as ScriptMethod<R>).bind(target);
}

/** Runs a script now. Every script takes exactly one key: the one that routes it to its slot. */
export function callScript<T = unknown>(client: RedisClient, name: ScriptName, key: string, args: Arg[]): Promise<T> {
  defineScripts(client);
  return method<Promise<T>>(client, name)(key, ...args);
}

/** Queues a script on a pipeline or transaction of a connection that has the scripts defined. */
export function queueScript(transaction: ChainableCommander, name: ScriptName, key: string, args: Arg[]): void {
  method<ChainableCommander>(transaction, name)(key, ...args);
}
