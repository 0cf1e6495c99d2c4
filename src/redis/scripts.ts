/**
 * aftercall's Lua scripts, used only where atomicity needs them: enqueueing a task
 * together with its expiry-index entry (and a reminder with its booking), dead-lettering
 * a job (out of its queue and into the dead-letter store in one step), sweeping,
 * replaying and purging.
 *
 * Each script is a file in ./lua, laid out like BullMQ's commands:
 * - named `<name>-<number of KEYS>.lua` (the enqueue script's count varies: see its header);
 * - a header naming every KEY, ARGV and output;
 * - every key it touches is in KEYS, all with the type's hash tag, so one call stays in one
 *   Redis Cluster slot. Keys of jobs found inside a script (in the expiry index, a
 *   booking's previous reminder) are a prefix from KEYS plus the job id;
 * - shared functions come from ./lua/includes, pulled in explicitly with
 *   `--- @include "<name>"` (each included once per script, before what includes it);
 * - options are one JSON argument, decoded with Redis' cjson: named, no positional fillers.
 *   (JSON rather than msgpack: readable in MONITOR and SLOWLOG, and no extra dependency.)
 * The enqueue script also embeds BullMQ's add script at `--- @bullmq-add` (bullmq-compat.ts).
 *
 * Registered on a connection with ioredis' defineCommand (EVALSHA, falling back to EVAL),
 * then usable on the connection and on its pipelines.
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { bullmqScript, type BullmqAddScript } from './bullmq-compat.js';
import type { TypeKeys } from './keys.js';
import type { StoredAttempt } from './attempt-history.js';

export type RedisClient = Redis | Cluster;
type Arg = string | number | Buffer;

/** Keys a script receives, by the name its Lua gives them (`local k = { job = KEYS[1], ... }`). */
export type ScriptKey =
  | 'job'
  | 'lock'
  | 'scope'
  | 'conversation'
  | 'jobPrefix'
  | 'conversationPrefix'
  | 'wait'
  | 'paused'
  | 'delayed'
  | 'prioritized'
  | 'active'
  | 'stalled'
  | 'failed'
  | 'events'
  | 'meta'
  | 'marker'
  | 'expiry'
  | 'retrying'
  | 'deadLetterCounts'
  | 'stats'
  | 'settle'
  | 'settlePrefix';

interface ScriptSpec {
  file: string;
  /** Its KEYS in order (after BullMQ's for an enqueue script, whose later ones are sent only when needed). */
  keys: readonly ScriptKey[];
  /** BullMQ add script embedded at `--- @bullmq-add`. */
  embeds?: BullmqAddScript;
}

/**
 * What an enqueue passes after BullMQ's KEYS: ENQUEUE_KEYS always; ENQUEUE_TAKE_KEYS too for a task
 * already expired or scoped (taking a job out of its queue); ENQUEUE_SCOPE_KEYS too for a scoped one.
 */
export const ENQUEUE_KEYS = ['job', 'expiry', 'stats', 'settle'] as const satisfies readonly ScriptKey[];
export const ENQUEUE_TAKE_KEYS = [
  'wait',
  'paused',
  'delayed',
  'prioritized',
  'active',
  'failed',
  'deadLetterCounts',
  'retrying',
  'events',
  'meta',
] as const satisfies readonly ScriptKey[];
export const ENQUEUE_SCOPE_KEYS = [
  'scope',
  'conversation',
  'jobPrefix',
  'conversationPrefix',
] as const satisfies readonly ScriptKey[];

export const SCRIPTS = {
  enqueueStandard: {
    file: 'enqueue-task.lua',
    keys: [...ENQUEUE_KEYS, ...ENQUEUE_TAKE_KEYS, ...ENQUEUE_SCOPE_KEYS],
    embeds: 'addStandardJob',
  },
  enqueueDelayed: {
    file: 'enqueue-task.lua',
    keys: [...ENQUEUE_KEYS, ...ENQUEUE_TAKE_KEYS, ...ENQUEUE_SCOPE_KEYS],
    embeds: 'addDelayedJob',
  },
  settleScope: {
    file: 'settle-scope-12.lua',
    keys: [
      'scope',
      'jobPrefix',
      'conversationPrefix',
      'wait',
      'paused',
      'delayed',
      'prioritized',
      'active',
      'expiry',
      'retrying',
      'events',
      'meta',
    ],
  },
  expireJobs: {
    file: 'expire-jobs-12.lua',
    keys: [
      'expiry',
      'jobPrefix',
      'wait',
      'paused',
      'delayed',
      'prioritized',
      'active',
      'failed',
      'deadLetterCounts',
      'retrying',
      'events',
      'meta',
    ],
  },
  deadLetterActive: {
    file: 'dead-letter-active-10.lua',
    keys: ['job', 'lock', 'active', 'stalled', 'failed', 'deadLetterCounts', 'expiry', 'retrying', 'events', 'meta'],
  },
  settleConversations: {
    file: 'settle-conversations-2.lua',
    keys: ['stats', 'settlePrefix'],
  },
  recordAttempt: {
    file: 'record-attempt-2.lua',
    keys: ['job', 'retrying'],
  },
  replayDeadLetter: {
    file: 'replay-dead-letter-8.lua',
    keys: ['job', 'failed', 'deadLetterCounts', 'expiry', 'wait', 'meta', 'marker', 'events'],
  },
  purgeDeadLetter: {
    file: 'purge-dead-letter-7.lua',
    keys: ['job', 'failed', 'deadLetterCounts', 'expiry', 'retrying', 'events', 'meta'],
  },
} as const satisfies Record<string, ScriptSpec>;

export type ScriptName = keyof typeof SCRIPTS;

/** The enqueue script that wraps each of BullMQ's add scripts. */
export const ENQUEUE_SCRIPT = {
  addStandardJob: 'enqueueStandard',
  addDelayedJob: 'enqueueDelayed',
} as const satisfies Record<BullmqAddScript, ScriptName>;

/** The ids a script's per-job and per-scope keys are made from. */
export interface KeyIds {
  jobId?: string;
  scopeId?: string;
  /** Encoded (encodeKeyPart), as scope records store it. */
  conversation?: string;
}

function need(id: string | undefined, name: string, key: ScriptKey): string {
  if (id === undefined) throw new Error(`script key ${key} needs ${name}`);
  return id;
}

/** One key a script receives, for a type (and a job, scope or conversation). */
export function scriptKey(keys: TypeKeys, key: ScriptKey, ids: KeyIds = {}): string {
  switch (key) {
    case 'job':
      return keys.job(need(ids.jobId, 'a job id', key));
    case 'lock':
      return keys.lock(need(ids.jobId, 'a job id', key));
    case 'scope':
      return keys.scope(need(ids.scopeId, 'a scope id', key));
    case 'conversation':
      return keys.conversationPrefix + need(ids.conversation, 'a conversation id', key);
    case 'jobPrefix':
      return keys.base;
    case 'settle':
      return keys.settlePrefix + need(ids.conversation, 'a conversation id', key);
    default:
      return keys[key];
  }
}

/** A script's KEYS, in its order. */
export function scriptKeys(keys: TypeKeys, names: readonly ScriptKey[], ids: KeyIds = {}): string[] {
  return names.map((name) => scriptKey(keys, name, ids));
}

const LUA_DIR = new URL('./lua/', import.meta.url);
const readLua = (file: string) => readFileSync(new URL(file, LUA_DIR), 'utf8');
const INCLUDE = /^--- @include "([\w-]+)"[ \t]*$/gm;
const BULLMQ_ADD = /^--- @bullmq-add[ \t]*$/m;

/** Expands `--- @include "name"` (lua/includes/name.lua), each include once per script. */
export function expandIncludes(source: string, included = new Set<string>(), chain: string[] = []): string {
  return source.replace(INCLUDE, (_line, name: string) => {
    if (chain.includes(name)) throw new Error(`Lua include cycle: ${[...chain, name].join(' -> ')}`);
    if (included.has(name)) return `-- (${name}: included above)`;
    included.add(name);
    const body = expandIncludes(readLua(`includes/${name}.lua`), included, [...chain, name]);
    return `-- include ${name}\n${body.trimEnd()}`;
  });
}

/** A script's full Lua text: includes expanded, BullMQ's add script embedded. */
export function scriptSource(name: ScriptName): string {
  const spec: ScriptSpec = SCRIPTS[name];
  const countInName = /-(\d+)\.lua$/.exec(spec.file);
  if (countInName && Number(countInName[1]) !== spec.keys.length) {
    throw new Error(`${spec.file} takes ${countInName[1]} KEYS, but scripts.ts lists ${spec.keys.length}`);
  }
  let body = expandIncludes(readLua(spec.file));
  if (spec.embeds) {
    const add = bullmqScript(spec.embeds);
    if (!BULLMQ_ADD.test(body)) throw new Error(`${spec.file} has no --- @bullmq-add line to embed ${spec.embeds} at`);
    const embedded = `local BULLMQ_ADD_KEYS = ${add.keys}\nlocal function bullmqAdd()\n${add.content}\nend`;
    body = body.replace(BULLMQ_ADD, () => embedded);
  }
  return body;
}

const commandName = (name: ScriptName) => `aftercall_${name}`;
let sources: Map<ScriptName, string> | undefined;
const defined = new WeakSet<object>();

/** Registers the scripts on a connection (once per connection). */
export function defineScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  sources ??= new Map((Object.keys(SCRIPTS) as ScriptName[]).map((name) => [name, scriptSource(name)]));
  for (const [name, lua] of sources) {
    const spec: ScriptSpec = SCRIPTS[name];
    // An enqueue's key count varies (BullMQ's add script's, a scoped task's): it is sent with each call.
    client.defineCommand(commandName(name), spec.embeds ? { lua } : { numberOfKeys: spec.keys.length, lua });
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

/** Runs a script now with its KEYS and ARGV. */
export function callScript<T = unknown>(
  client: RedisClient,
  name: ScriptName,
  keys: string[],
  args: Arg[],
): Promise<T> {
  defineScripts(client);
  const spec: ScriptSpec = SCRIPTS[name];
  if (spec.embeds) return method<Promise<T>>(client, name)(keys.length, ...keys, ...args);
  if (keys.length !== spec.keys.length) {
    throw new Error(`aftercall script ${name} takes ${spec.keys.length} KEYS, got ${keys.length}`);
  }
  return method<Promise<T>>(client, name)(...keys, ...args);
}

// ---------------------------------------------------------------------------------------
// One function per script: its options typed as its header describes them.

export interface EnqueueOptions {
  jobId: string;
  expiresAt: number;
  runAt: number;
  now: number;
  /** Already past expiresAt: dead-letter at once. */
  expired: boolean;
  /** The failed reason recorded when expired (sent only then). */
  message?: string;
  scope?: ScopeOptions & { id: string; idempotencyKey: string };
  /** Encoded conversation id (encodeKeyPart): names the conversation's follow-up countdown. */
  conversation: string;
  /** Only for the conversation's anchor task: count the conversation and start its countdown. */
  settle?: SettleOptions;
}

/** conversation-settlement.ts: what the anchor task's enqueue counts. */
export interface SettleOptions {
  outcome: string;
  sentiment: string;
  /** The conversation's tasks a worker will finish (not those dead-lettered at once). */
  tasks: number;
  /** Some task was dead-lettered already (expired when enqueued). */
  partial: boolean;
  /** The anchor is the conversation's only task: no countdown, its worker settles it. */
  solo: boolean;
  /** How long the countdown lives (ms). */
  ttl: number;
}

export interface ScopeOptions {
  action: 'replace' | 'cancel';
  /** Epoch ms: the outcome's endedAt. */
  version: number;
  /** Encoded conversation id (encodeKeyPart). */
  conversation: string;
  /** How long the scope's records are kept (ms). */
  ttl: number;
}

/** enqueue-task.lua: BullMQ's add command plus aftercall's keys; resolves to the script's reply. */
export function enqueueTask(
  client: RedisClient,
  add: { script: BullmqAddScript; keys: string[]; args: Arg[] },
  keys: TypeKeys,
  options: EnqueueOptions,
): Promise<unknown[]> {
  const ids = { jobId: options.jobId, scopeId: options.scope?.id, conversation: options.conversation };
  const ours = scriptKeys(keys, ENQUEUE_KEYS, ids);
  if (options.expired || options.scope) ours.push(...scriptKeys(keys, ENQUEUE_TAKE_KEYS, ids));
  if (options.scope) ours.push(...scriptKeys(keys, ENQUEUE_SCOPE_KEYS, ids));
  const { scope, conversation: _conversation, ...rest } = options;
  const packed = scope
    ? {
        ...rest,
        scope: {
          action: scope.action,
          version: scope.version,
          conversation: scope.conversation,
          idempotencyKey: scope.idempotencyKey,
          ttl: scope.ttl,
        },
      }
    : rest;
  return callScript(client, ENQUEUE_SCRIPT[add.script], [...add.keys, ...ours], [...add.args, JSON.stringify(packed)]);
}

/** settle-scope-12.lua: a scope change that adds no task. Resolves to `current` or `stale`. */
export function settleScope(
  client: RedisClient,
  keys: TypeKeys,
  scopeId: string,
  options: ScopeOptions & { now: number },
): Promise<string> {
  return callScript(client, 'settleScope', scriptKeys(keys, SCRIPTS.settleScope.keys, { scopeId }), [
    JSON.stringify(options),
  ]);
}

/**
 * expire-jobs-12.lua: one batch of the sweep. Resolves to [expired, dropped, deferred, remaining,
 * finished]: finished lists the dead-lettered jobs' anchors, conversation ids and solo flags, flat (anchor, id, '1'|'0', ...).
 */
export function expireJobs(
  client: RedisClient,
  keys: TypeKeys,
  options: { now: number; message: string; limit: number; recheckAt: number },
): Promise<[number, number, number, number, string[]]> {
  return callScript(client, 'expireJobs', scriptKeys(keys, SCRIPTS.expireJobs.keys), [JSON.stringify(options)]);
}

/**
 * dead-letter-active-10.lua: 0 when dead-lettered, -1 missing, -2 lock not ours, -3 not active.
 * `entry` (with `limit`) is appended to the job's attempt history in the same call.
 */
export function deadLetterActive(
  client: RedisClient,
  keys: TypeKeys,
  options: {
    jobId: string;
    token: string;
    reason: string;
    message: string;
    attempts: number;
    now: number;
    entry?: StoredAttempt;
    limit?: number;
  },
): Promise<number> {
  const ids = { jobId: options.jobId };
  return callScript(client, 'deadLetterActive', scriptKeys(keys, SCRIPTS.deadLetterActive.keys, ids), [
    JSON.stringify(options),
  ]);
}

/**
 * record-attempt-2.lua: appends an attempt to the job's history (the last `limit` kept) and,
 * with `retryAt`, adds the job to the retrying index. 0 when recorded, -1 when the job is missing.
 */
export function recordAttempt(
  client: RedisClient,
  keys: TypeKeys,
  options: { jobId: string; entry: StoredAttempt; limit: number; retryAt?: number },
): Promise<number> {
  return callScript(client, 'recordAttempt', scriptKeys(keys, SCRIPTS.recordAttempt.keys, { jobId: options.jobId }), [
    JSON.stringify(options),
  ]);
}

/**
 * settle-conversations-2.lua: counts finished tasks down on their conversations' countdowns,
 * for conversations whose anchor is `keys`' type. Resolves to the number of conversations settled.
 */
export function settleConversations(
  client: RedisClient,
  keys: TypeKeys,
  options: { items: [conversation: string, completed: 0 | 1, solo: 0 | 1][]; ttl: number },
): Promise<number> {
  return callScript(client, 'settleConversations', scriptKeys(keys, SCRIPTS.settleConversations.keys), [
    JSON.stringify(options),
  ]);
}

/** replay-dead-letter-8.lua: 1 when replayed, 0 when not in the dead-letter store. `data` '' keeps the job's. */
export function replayDeadLetter(
  client: RedisClient,
  keys: TypeKeys,
  options: { jobId: string; expiresAt: number },
  data: string,
): Promise<number> {
  const ids = { jobId: options.jobId };
  return callScript(client, 'replayDeadLetter', scriptKeys(keys, SCRIPTS.replayDeadLetter.keys, ids), [
    JSON.stringify(options),
    data,
  ]);
}

/** purge-dead-letter-7.lua: 1 when purged, 0 when not in the dead-letter store. */
export function purgeDeadLetter(client: RedisClient, keys: TypeKeys, jobId: string): Promise<number> {
  return callScript(client, 'purgeDeadLetter', scriptKeys(keys, SCRIPTS.purgeDeadLetter.keys, { jobId }), [jobId]);
}
