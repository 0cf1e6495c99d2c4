/**
 * aftercall's Lua scripts, used only where atomicity needs them: enqueueing a task
 * together with its expiry-index entry (and a reminder with its booking), dead-lettering
 * a job (out of its queue and into the dead-letter store in one step), sweeping,
 * replaying and purging.
 *
 * Each script is a file in ./lua, with lua/helpers.lua put in front of it. The enqueue
 * scripts also embed BullMQ's own add script, unchanged, taken from the installed BullMQ
 * (its prebuilt script text), so a job is written exactly as `Queue.add` writes it. They
 * are registered on a connection with ioredis' defineCommand (EVALSHA, falling back to
 * EVAL), and then usable on the connection and on its pipelines.
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { bullmqScript, type BullmqAddScript } from './bullmq-compat.js';

export type RedisClient = Redis | Cluster;

/** The enqueue script that wraps each of BullMQ's add scripts. */
export const ENQUEUE_SCRIPT = {
  addStandardJob: 'enqueueStandard',
  addDelayedJob: 'enqueueDelayed',
} as const satisfies Record<BullmqAddScript, ScriptName>;

interface ScriptSpec {
  file: string;
  /** Number of KEYS; 1 for aftercall's own scripts (the key that routes the call). */
  keys: number;
  /** BullMQ script embedded at `--@bullmq-add`. */
  embeds?: string;
}

const SCRIPTS = {
  enqueueStandard: { file: 'enqueue-task.lua', keys: bullmqScript('addStandardJob').keys, embeds: 'addStandardJob' },
  enqueueDelayed: { file: 'enqueue-task.lua', keys: bullmqScript('addDelayedJob').keys, embeds: 'addDelayedJob' },
  settleScope: { file: 'settle-scope.lua', keys: 1 },
  expireJobs: { file: 'expire-jobs.lua', keys: 1 },
  deadLetterActive: { file: 'dead-letter-active.lua', keys: 1 },
  replayDeadLetter: { file: 'replay-dead-letter.lua', keys: 1 },
  purgeDeadLetter: { file: 'purge-dead-letter.lua', keys: 1 },
} satisfies Record<string, ScriptSpec>;

export type ScriptName = keyof typeof SCRIPTS;
type Arg = string | number | Buffer;

const commandName = (name: ScriptName) => `aftercall_${name}`;
const readLua = (file: string) => readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');

let sources: Map<ScriptName, string> | undefined;
function loadSources(): Map<ScriptName, string> {
  if (!sources) {
    const helpers = readLua('helpers.lua');
    sources = new Map(
      (Object.entries(SCRIPTS) as [ScriptName, ScriptSpec][]).map(([name, spec]) => {
        let body = readLua(spec.file);
        if (spec.embeds) {
          const embedded = bullmqScript(spec.embeds);
          if (!body.includes('--@bullmq-add')) throw new Error(`cannot embed BullMQ script ${spec.embeds}`);
          body = body.replace('--@bullmq-add', () => embedded.content);
        }
        return [name, `${helpers}\n${body}`];
      }),
    );
  }
  return sources;
}

const defined = new WeakSet<object>();

/** Registers the scripts on a connection (once per connection). */
export function defineScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  for (const [name, lua] of loadSources()) {
    client.defineCommand(commandName(name), { numberOfKeys: SCRIPTS[name].keys, lua });
  }
  defined.add(client);
}

type ScriptMethod<R> = (...args: Arg[]) => R;

function method<R>(target: object, name: ScriptName): ScriptMethod<R> {
  const fn = (target as Record<string, unknown>)[commandName(name)];
  if (typeof fn !== 'function') {
    throw new Error(`aftercall script ${name} is not defined on this connection; call defineScripts() first`);
  }
  return (fn as ScriptMethod<R>).bind(target);
}

/**
 * Runs a script now: its KEYS first (one for aftercall's own scripts: the key that routes
 * it to its slot), then its ARGV.
 */
export function callScript<T = unknown>(client: RedisClient, name: ScriptName, key: string, args: Arg[]): Promise<T> {
  defineScripts(client);
  return method<Promise<T>>(client, name)(key, ...args);
}

/** Runs a script with several KEYS (the enqueue scripts take BullMQ's). */
export function callScriptWithKeys<T = unknown>(client: RedisClient, name: ScriptName, keysAndArgs: Arg[]): Promise<T> {
  defineScripts(client);
  return method<Promise<T>>(client, name)(...keysAndArgs);
}
