/**
 * Every BullMQ internal aftercall relies on, in one place. Nothing else in aftercall reads
 * BullMQ's undocumented structures; test/bullmq-compat.test.ts checks each one against the
 * installed BullMQ (pinned exactly, see BULLMQ_VERSION), so an upgrade that changes one
 * fails there, loudly, rather than in production.
 *
 * - Script loading: BullMQ's prebuilt Lua scripts (`bullmq/dist/cjs/scripts`), by name.
 * - The add command: BullMQ's backend builds an add's keys and arguments (which script,
 *   packed options, the job's data) and hands them to `runCommand` of the client or
 *   transaction it is given. Given a recorder instead, it hands them over without touching
 *   Redis. aftercall's enqueue script (lua/enqueue-tasks.lua) embeds BullMQ's add scripts
 *   (embeddedAdd: unchanged but for their duplicate check, which the enqueue makes itself) and
 *   runs that command in it, once per task, so a job is written exactly as `Queue.add` writes
 *   it, and aftercall's expiry index is written in the same atomic step.
 * - The job counter (`<queue>:id`): BullMQ's add increments it once per call, before its
 *   duplicate check. The enqueue runs an add only for a job that does not exist, so the
 *   counter is the number of tasks created: aftercall reads it as that (fleet-state.ts).
 * - Job hash fields and queue keys aftercall's Lua reads and writes (attempts made, the
 *   marker that wakes workers, the event stream's size limit): named in
 *   lua/includes/bullmq.lua, which the contract test compares with BULLMQ_FIELDS.
 * - Client names: how a BullMQ Worker names its Redis connection, to count workers.
 * - A Worker's blocking connection on a Redis Cluster: closing a worker first turns off
 *   BullMQ's cluster recovery of that connection (stopBlockingRecovery), which could
 *   otherwise reconnect it in the middle of the close and leave close() waiting forever.
 *   Its contract test needs a cluster: test/redis-cluster.test.ts.
 * - The dead-letter convention: a processor that moved its job out of `active` itself
 *   throws DelayedError, and BullMQ then leaves the job alone.
 * - Class modules: Queue, Job and DelayedError come from BullMQ's own class files, not its
 *   index, which also loads the Worker class and its dependencies; so the producer entry
 *   (`aftercall/producer`) loads no worker code. They are the very classes the index exports
 *   (test/producer-entry.test.ts), so the worker side shares them.
 */
import { createRequire } from 'node:module';
import type * as Bullmq from 'bullmq';
import type { IRedisTransaction, JobsOptions } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';

/** The BullMQ version these internals were checked against; package.json pins it exactly. */
export const BULLMQ_VERSION = '6.7.0';

/** Name of aftercall's custom backoff strategy: jobs name it, workers register it (worker/retry-policy.ts). */
export const BACKOFF_STRATEGY = 'aftercall';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------------------------------
// Class modules (BullMQ's CommonJS build, the one its index loads: one copy of each class)

/** BullMQ's Queue, from classes/queue.js: the producer's import, without the Worker class. */
export const { Queue } = require('bullmq/dist/cjs/classes/queue.js') as { Queue: typeof Bullmq.Queue };
export type Queue = Bullmq.Queue;
const { Job } = require('bullmq/dist/cjs/classes/job.js') as { Job: typeof Bullmq.Job };
const { DelayedError } = require('bullmq/dist/cjs/classes/errors/delayed-error.js') as {
  DelayedError: typeof Bullmq.DelayedError;
};

// ---------------------------------------------------------------------------------------
// Script loading

export interface BullmqScript {
  name: string;
  /** The script's Lua text, includes resolved. */
  content: string;
  /** Number of KEYS it takes. */
  keys: number;
}

let bullScripts: Record<string, BullmqScript> | undefined;

/** One of BullMQ's prebuilt scripts, by its name (`addStandardJob`). */
export function bullmqScript(name: string): BullmqScript {
  bullScripts ??= require('bullmq/dist/cjs/scripts/index.js') as Record<string, BullmqScript>;
  const script = bullScripts[name];
  if (!script?.content || typeof script.keys !== 'number') {
    throw new Error(`BullMQ ${BULLMQ_VERSION} has no script ${name}: bullmq-compat.ts needs updating`);
  }
  return script;
}

/**
 * BullMQ's duplicate check in its add scripts: a job whose id exists is not added again.
 * aftercall's enqueue script checks `EXISTS` on the job's key itself, in the same atomic call,
 * before it decides anything (a repeated outcome answers with the existing job's times), and
 * runs the add only for a job that does not exist: BullMQ's own check could only answer no.
 */
export const BULLMQ_DUPLICATE_CHECK = 'if rcall("EXISTS", jobIdKey) == 1 then';

/**
 * An add script as the enqueue script embeds it: BullMQ's, with its duplicate check turned
 * off (BULLMQ_DUPLICATE_CHECK). Each command a script runs costs Redis a few µs beyond the
 * command itself (docs/PERFORMANCE.md, enqueue latency), and this one would be run for every
 * task. The check must appear exactly once: any other count means BullMQ changed, and the
 * enqueue refuses to load rather than add a job twice.
 */
export function embeddedAdd(name: BullmqAddScript): BullmqScript {
  const script = bullmqScript(name);
  const found = script.content.split(BULLMQ_DUPLICATE_CHECK).length - 1;
  if (found !== 1) {
    throw new Error(
      `BullMQ ${BULLMQ_VERSION}'s ${name} has ${found} duplicate checks (${BULLMQ_DUPLICATE_CHECK}) where aftercall expects 1: bullmq-compat.ts needs updating`,
    );
  }
  return {
    ...script,
    content: script.content.replace(
      BULLMQ_DUPLICATE_CHECK,
      'if false then -- aftercall: enqueue-tasks.lua checked EXISTS before running this add',
    ),
  };
}

/** The add scripts aftercall's enqueue wraps: jobs with no delay, and delayed jobs (a reminder, a retry). */
export const BULLMQ_ADD_SCRIPTS = ['addStandardJob', 'addDelayedJob'] as const;
export type BullmqAddScript = (typeof BULLMQ_ADD_SCRIPTS)[number];

// ---------------------------------------------------------------------------------------
// The add command

export interface BullmqAddCommand {
  /** Which add script BullMQ chose. */
  script: BullmqAddScript;
  /** Its KEYS (as many as the script takes). */
  keys: string[];
  /** Its ARGV: packed arguments, the job's data, packed options. */
  args: (string | number | Buffer)[];
}

/** The exact command BullMQ's `Queue.add` would send for a job, without sending it. */
export function bullmqAddCommand(
  queue: Queue,
  name: string,
  data: unknown,
  opts: JobsOptions,
  jobId: string,
): BullmqAddCommand {
  const job = new Job(queue, name, data, opts, jobId);
  let recorded: { command: string; args: (string | number | Buffer)[] } | undefined;
  let calls = 0;
  const recorder = {
    runCommand(command: string, args: (string | number | Buffer)[]) {
      calls += 1;
      recorded = { command, args };
      return 1;
    },
  } as unknown as IRedisTransaction;
  // Records synchronously; the promise only reports the recorder's fake reply.
  queue
    .getBackend()
    .addJobToTransaction(recorder, job.asJSON(), jobId, {}, queue.keys)
    .catch(() => undefined);
  if (!recorded || calls !== 1) throw new Error(`BullMQ built ${calls} commands for one add, expected 1`);
  // BullMQ names the command `<script>:<version>`.
  const script = recorded.command.split(':')[0] as BullmqAddScript;
  if (!BULLMQ_ADD_SCRIPTS.includes(script)) {
    throw new Error(`BullMQ chose the ${script} script, which aftercall does not wrap`);
  }
  const keyCount = bullmqScript(script).keys;
  return { script, keys: recorded.args.slice(0, keyCount) as string[], args: recorded.args.slice(keyCount) };
}

// ---------------------------------------------------------------------------------------
// Hash fields and keys

/**
 * BullMQ's names for what aftercall's Lua and status readers touch. Job hash fields
 * (`<queue>:<jobId>`), meta hash fields (`<queue>:meta`), and the marker: a sorted-set
 * member BullMQ adds to `<queue>:marker` when a job becomes waiting, which wakes a worker
 * blocked on that key. Lua gets the same names from lua/includes/bullmq.lua.
 */
export const BULLMQ_FIELDS = {
  /** Job hash: attempts that ended (failed or completed); BullMQ retries while it is below `attempts`. */
  attemptsMade: 'atm',
  /** Job hash: times a worker started the job. */
  attemptsStarted: 'ats',
  /** Job hash: times the job stalled (its worker lost the lock). */
  stalledCounter: 'stc',
  /** Job hash: a failure recorded to be applied later. */
  deferredFailure: 'defa',
  /** Job hash: the worker that processed it. */
  processedBy: 'pb',
  /** Job hash (spelled out by BullMQ): data, timestamps, results. */
  data: 'data',
  timestamp: 'timestamp',
  delay: 'delay',
  processedOn: 'processedOn',
  finishedOn: 'finishedOn',
  failedReason: 'failedReason',
  stacktrace: 'stacktrace',
  returnvalue: 'returnvalue',
  /** Meta hash: the events stream's approximate length limit. */
  maxLenEvents: 'opts.maxLenEvents',
  /** Meta hash: present while the queue is paused. */
  paused: 'paused',
  /** Marker member (score 0) meaning "a job is waiting now". */
  markerMember: '0',
} as const;

/** Keys named after a job's key: its lock (held by the worker processing it) and its log list. */
export const BULLMQ_JOB_KEY_SUFFIXES = { lock: ':lock', logs: ':logs' } as const;

/** Default events stream length limit when the meta hash sets none. */
export const BULLMQ_DEFAULT_MAX_LEN_EVENTS = 10000;

/** BullMQ's key suffixes (`<prefix>:<queue>:<suffix>`) aftercall touches. */
export const BULLMQ_KEY_SUFFIXES = [
  'wait',
  'paused',
  'delayed',
  'prioritized',
  'active',
  'completed',
  'failed',
  'stalled',
  'events',
  'meta',
  'marker',
  'id',
] as const;
export type BullmqKeySuffix = (typeof BULLMQ_KEY_SUFFIXES)[number];

/** The fields of a job hash (HGETALL) that aftercall reads, decoded. */
export interface JobHashView {
  data: string | undefined;
  attemptsMade: number;
  timestamp: number | undefined;
  finishedOn: number | undefined;
  failedReason: string | undefined;
  returnvalue: string | undefined;
}

export function readJobHash(hash: Record<string, string>): JobHashView {
  const number = (field: string) => (hash[field] === undefined ? undefined : Number(hash[field]));
  return {
    data: hash[BULLMQ_FIELDS.data],
    attemptsMade: number(BULLMQ_FIELDS.attemptsMade) ?? 0,
    timestamp: number(BULLMQ_FIELDS.timestamp),
    finishedOn: number(BULLMQ_FIELDS.finishedOn),
    failedReason: hash[BULLMQ_FIELDS.failedReason],
    returnvalue: hash[BULLMQ_FIELDS.returnvalue],
  };
}

// ---------------------------------------------------------------------------------------
// Client names

/**
 * Whether a connection name is one a BullMQ Worker of `queue` gives its connections:
 * `<prefix>:<base64(queue)>`, with `:w:<worker name>` appended for a named worker.
 */
export function isBullmqWorkerName(clientName: string, prefix: string, queue: string): boolean {
  const name = `${prefix}:${Buffer.from(queue).toString('base64')}`;
  return clientName === name || clientName.startsWith(`${name}:w:`);
}

/** The names of every connection to Redis (every master of a cluster), from CLIENT LIST. */
export async function listClientNames(client: Redis | Cluster): Promise<string[]> {
  const nodes = 'nodes' in client && typeof client.nodes === 'function' ? client.nodes('master') : [client];
  const lists = await Promise.all(nodes.map((node) => (node as Redis).client('LIST') as Promise<string>));
  return lists.flatMap((list) => [...list.matchAll(/ name=(\S*)/g)].map((match) => match[1]!).filter(Boolean));
}

// ---------------------------------------------------------------------------------------
// A Worker's blocking connection on a Redis Cluster

/** What stopBlockingRecovery reaches inside a Worker: its backend's dedicated blocking connection. */
interface WorkerInternals {
  backend?: { blockingConnection?: { disableBlockingClusterReconnect?: () => void } };
}

/**
 * Turns off BullMQ's recovery of a Worker's blocking connection on a Redis Cluster; call it
 * right before `worker.close()`. Returns whether there was one to turn off (a Cluster
 * connection; on a single server BullMQ has none and this does nothing).
 *
 * Why: closing a worker disconnects its blocking connection and waits for that Cluster
 * client's `end` event. A BZPOPMIN still queued on a node the client was connecting to is
 * rejected at once, before `end`; BullMQ's cluster recovery then sees an empty node pool and
 * reconnects the client, so `end` never comes and `close()` never resolves (a forced close
 * returns the same pending promise). BullMQ turns that recovery off itself only later in
 * close(), after this wait. Seen on a 3-master cluster in about half the quick runs of
 * bench/redis-cluster.ts, 2026-12-01. Turning it off first is what close() does later
 * anyway (the call is idempotent, and close() releases it as usual).
 */
export function stopBlockingRecovery(worker: object): boolean {
  const connection = (worker as WorkerInternals).backend?.blockingConnection;
  if (typeof connection?.disableBlockingClusterReconnect !== 'function') return false;
  connection.disableBlockingClusterReconnect();
  return (connection as { patchedBlockingClusterClient?: unknown }).patchedBlockingClusterClient !== undefined;
}

// ---------------------------------------------------------------------------------------
// The dead-letter convention

/**
 * What a processor throws after it moved its job out of `active` itself (into the
 * dead-letter store, lua/dead-letter-active-10.lua). BullMQ treats a DelayedError as "the
 * job was moved already": it does not finish or fail the job again, and attemptsMade
 * stays what aftercall's script wrote.
 */
export function movedOutOfActive(message: string): Error {
  return new DelayedError(message);
}
