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
 * The enqueue script also embeds BullMQ's add scripts, each at its `--- @bullmq-add "<name>"` line
 * (bullmq-compat.ts), as `local <name> = { keys = <its key count>, run = function(KEYS, ARGV) ... end }`:
 * the function's parameters stand for the globals BullMQ's body reads, so it runs once per task.
 *
 * Registered on a connection with ioredis' defineCommand (EVALSHA, falling back to EVAL),
 * then usable on the connection and on its pipelines. The enqueue script, on the voice agent's
 * path, is sent by sendScript instead: the same EVALSHA and EVAL, encoded in one Buffer.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, type Cluster, type Redis } from 'ioredis';
import { BULLMQ_ADD_SCRIPTS, embeddedAdd, type BullmqAddScript } from './bullmq-compat.js';
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
  /** Its KEYS in order (per task, after BullMQ's, for the enqueue script, whose later ones are sent only when needed). */
  keys: readonly ScriptKey[];
  /** BullMQ add scripts embedded, each at its `--- @bullmq-add "<name>"` line. */
  embeds?: readonly BullmqAddScript[];
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
  enqueueTasks: {
    file: 'enqueue-tasks.lua',
    keys: [...ENQUEUE_KEYS, ...ENQUEUE_TAKE_KEYS, ...ENQUEUE_SCOPE_KEYS],
    embeds: BULLMQ_ADD_SCRIPTS,
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
const BULLMQ_ADD = /^--- @bullmq-add "(\w+)"[ \t]*$/gm;

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
    const wanted: readonly string[] = spec.embeds;
    const found = [...body.matchAll(BULLMQ_ADD)].map((match) => match[1]!);
    if (found.join() !== wanted.join())
      throw new Error(
        `${spec.file} embeds ${found.join(', ') || 'nothing'} at --- @bullmq-add, scripts.ts lists ${wanted}`,
      );
    body = body.replace(BULLMQ_ADD, (_line, name: BullmqAddScript) => {
      const add = embeddedAdd(name);
      return `local ${name} = { keys = ${add.keys}, run = function(KEYS, ARGV)\n${add.content}\nend }`;
    });
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

/** Decimal digits of a length (n >= 0). */
const digits = (n: number) => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10_000 ? 4 : String(n).length);

/** Writes `<prefix><n>\r\n` at `at`; returns the offset after it. */
function writeHeader(out: Buffer, at: number, prefix: number, n: number): number {
  out[at++] = prefix;
  for (let unit = 10 ** (digits(n) - 1); unit >= 1; unit /= 10) out[at++] = 48 + (Math.floor(n / unit) % 10);
  out[at++] = 13;
  out[at++] = 10;
  return at;
}

/**
 * A command's RESP, written into one Buffer sized first. ioredis encodes a command that has
 * a Buffer among its arguments (BullMQ's packed arguments) argument by argument, a header
 * string and a string copy for each, then copies them all into a Buffer: for the enqueue's ~90
 * arguments, 35-40 µs of CPU and the largest allocation of a conversationEnded call (23 of
 * its 99 KB, heap sampling). Here: about 12-19 µs, and no string but the arguments themselves.
 */
export function encodeCommand(name: string, args: readonly Arg[]): Buffer {
  let size = 1 + digits(args.length + 1) + 2;
  for (let index = -1; index < args.length; index += 1) {
    const arg = index < 0 ? name : args[index]!;
    const n = typeof arg === 'string' ? Buffer.byteLength(arg) : Buffer.isBuffer(arg) ? arg.length : String(arg).length;
    argLengths[index + 1] = n;
    size += 1 + digits(n) + 2 + n + 2;
  }
  const out = Buffer.allocUnsafe(size);
  let at = writeHeader(out, 0, 42 /* * */, args.length + 1);
  for (let index = -1; index < args.length; index += 1) {
    const arg = index < 0 ? name : args[index]!;
    at = writeHeader(out, at, 36 /* $ */, argLengths[index + 1]!);
    if (Buffer.isBuffer(arg)) {
      out.set(arg, at);
      at += arg.length;
    } else at += out.write(typeof arg === 'string' ? arg : String(arg), at);
    out[at++] = 13;
    out[at++] = 10;
  }
  return out;
}
/** encodeCommand's byte length of each argument, kept between calls (it runs synchronously). */
const argLengths: number[] = [];

interface SentScript {
  lua: string;
  sha: string;
  /** The connections (sockets) that were sent the script itself already. */
  loadedOn: WeakSet<object>;
}

/**
 * A script call written as encodeCommand builds it; keys, routing and replies as ioredis' own.
 * As ioredis' defined commands do, the first call on a connection is an EVAL carrying the
 * script (no NOSCRIPT round trip), later ones EVALSHA.
 */
class ScriptCommand extends Command {
  /** args: the sha's place (any value), the key count, KEYS, ARGV. */
  constructor(
    private readonly script: SentScript,
    args: Arg[],
    options: { replyEncoding: 'utf8'; keyPrefix?: string },
    private readonly forceEval = false,
  ) {
    super('evalsha', args, options);
    this.args[0] = script.sha;
  }

  override toWritable(socket: object): Buffer {
    const evalNow = this.forceEval || !this.script.loadedOn.has(socket);
    this.script.loadedOn.add(socket);
    this.name = evalNow ? 'eval' : 'evalsha';
    this.args[0] = evalNow ? this.script.lua : this.script.sha;
    return encodeCommand(this.name, this.args as Arg[]);
  }
}

const sentScripts = new Map<ScriptName, SentScript>();

/**
 * Runs a script in a ScriptCommand; a server that lost it (NOSCRIPT: a restart, a failover)
 * is sent the script itself again with EVAL. On a cluster the command goes to its keys' slot.
 */
function sendScript<T>(client: RedisClient, name: ScriptName, keys: string[], args: Arg[]): Promise<T> {
  defineScripts(client);
  let script = sentScripts.get(name);
  if (!script) {
    const lua = sources!.get(name)!;
    script = { lua, sha: createHash('sha1').update(lua).digest('hex'), loadedOn: new WeakSet() };
    sentScripts.set(name, script);
  }
  // As ioredis' own commands: replies decoded as UTF-8 strings, the connection's key prefix applied.
  const options = {
    replyEncoding: 'utf8' as const,
    keyPrefix: (client as { options?: { keyPrefix?: string } }).options?.keyPrefix,
  };
  const all: Arg[] = ['', String(keys.length), ...keys, ...args];
  const sent = script;
  return (client.sendCommand(new ScriptCommand(sent, all, options)) as Promise<T>).catch((error: Error) => {
    if (!error.message.includes('NOSCRIPT')) throw error;
    return client.sendCommand(new ScriptCommand(sent, all, options, true)) as Promise<T>;
  });
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

/** One task of an enqueue call: BullMQ's add command for its job, its type's keys, aftercall's options. */
export interface EnqueueTask {
  add: { script: BullmqAddScript; keys: string[]; args: Arg[] };
  keys: TypeKeys;
  options: EnqueueOptions;
}

/**
 * enqueue-tasks.lua: enqueues tasks whose keys share one slot (on a cluster, one type's; on
 * standalone Redis, any) in one call. Resolves to the script's replies, one per task in order.
 */
export function enqueueTasks(client: RedisClient, tasks: readonly EnqueueTask[]): Promise<unknown[][]> {
  const keys: string[] = [];
  const perTask: string[] = [];
  const args: Arg[] = [];
  for (const { add, keys: typeKeys, options } of tasks) {
    const ids = { jobId: options.jobId, scopeId: options.scope?.id, conversation: options.conversation };
    const ours = scriptKeys(typeKeys, ENQUEUE_KEYS, ids);
    if (options.expired || options.scope) ours.push(...scriptKeys(typeKeys, ENQUEUE_TAKE_KEYS, ids));
    if (options.scope) ours.push(...scriptKeys(typeKeys, ENQUEUE_SCOPE_KEYS, ids));
    keys.push(...add.keys, ...ours);
    args.push(...add.args);
    // What the script reads of each task, no more: decoding the options is part of its cost.
    const { scope, conversation: _conversation, runAt, now, expired, message, ...rest } = options;
    const packed = {
      add: add.script,
      keys: ours.length,
      ...rest,
      ...(expired && { expired, message }),
      ...((expired || scope) && { now }),
      ...(scope && { runAt }),
    };
    perTask.push(
      JSON.stringify(
        scope
          ? {
              ...packed,
              scope: {
                action: scope.action,
                version: scope.version,
                conversation: scope.conversation,
                idempotencyKey: scope.idempotencyKey,
                ttl: scope.ttl,
              },
            }
          : packed,
      ),
    );
  }
  return sendScript(client, 'enqueueTasks', keys, [`[${perTask.join(',')}]`, ...args]);
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
