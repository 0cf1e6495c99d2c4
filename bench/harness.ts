/**
 * Shared by the process-level benchmarks (throughput, io-concurrency, horizontal-scaling,
 * redis-cost, memory): a private redis-server, worker child processes driven over IPC, the
 * slow HTTP receiver, job builders, one side of a comparison and its rounds, and CPU
 * accounting. Everything started here has a stop(); a benchmark runs inside withRedis,
 * whose scope stops what it is handed and removes the keys of the prefixes it named.
 *
 * This process (the harness, run by tsx) runs aftercall from its TypeScript source, as the
 * tests do: the producer that enqueues, the planner that builds raw BullMQ's jobs. The
 * worker processes run the built package (see worker-process.ts for why).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { createProducer, planOutcome, resolveTaskConfigs, type ConversationOutcome } from '../src/index.js';
import { REDIS_URL, removePrefix, WEBHOOK_SECRET } from '../test/helpers/redis.js';
import { redisServerBinary, startPrivateRedis, type PrivateRedis } from '../test/helpers/redis-server.js';
import { waitUntil } from '../test/helpers/wait.js';
import { breakdown, scriptCalls, type LatencyBreakdown } from './latency-breakdown.js';
import { acrossRounds, alternating, log, type Spread } from './lib.js';
import type {
  ChildMessage,
  Command,
  Reply,
  ServerReport,
  ServerTimings,
  WorkerProcessOptions,
  WorkerReport,
  WorkerTimings,
} from './protocol.js';

export { WEBHOOK_SECRET };
export const TYPE = 'update_crm';
export const QUEUE = `{${TYPE}}`;

export const now = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------
// Nothing outlives the harness: every child process, private Redis and temp dir made here
// is stopped by the benchmark in `finally`; should the harness die first (an uncaught
// error, Ctrl-C), they are killed and removed on the way out. The hooks are installed with
// the first of them, so importing this module (as the smoke test does) changes nothing.

const children = new Set<ChildProcess>();
const servers = new Set<PrivateRedis>();
const tempDirs = new Set<string>();
let exitHooksInstalled = false;

function installExitHooks() {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const cleanUp = () => {
    for (const child of children) child.kill('SIGKILL');
    for (const server of servers) {
      if (server.pid !== undefined) process.kill(server.pid, 'SIGKILL');
      rmSync(server.dir, { recursive: true, force: true });
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanUp);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanUp();
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    });
  }
}

function track(child: ChildProcess): ChildProcess {
  installExitHooks();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function tempDir(name: string): string {
  installExitHooks();
  const dir = mkdtempSync(join(tmpdir(), name));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------
// Redis: a private redis-server without persistence (test/helpers/redis-server.ts), or the
// shared one.

export interface BenchRedis {
  url: string;
  /** False when it is the shared Redis at REDIS_URL (redis-server not installed). */
  isolated: boolean;
  stop(): Promise<void>;
}

/**
 * A Redis of the benchmark's own, so its numbers (commandstats, used_memory, CPU) are
 * not polluted by other users of the shared Redis. Falls back to REDIS_URL (isolated:
 * false) when redis-server is not installed.
 */
export async function startRedis(): Promise<BenchRedis> {
  if (!redisServerBinary()) return { url: REDIS_URL, isolated: false, async stop() {} };
  installExitHooks();
  const server = await startPrivateRedis();
  servers.add(server);
  return {
    url: server.url,
    isolated: true,
    async stop() {
      await server.destroy();
      servers.delete(server);
    },
  };
}

/** Where a benchmark ran, for the report: "on <this>". */
export function describeRedis(server: { isolated: boolean }): string {
  return server.isolated
    ? 'a private redis-server without persistence'
    : "the shared Redis at REDIS_URL (redis-server not found), so other clients' load and commands may be counted";
}

/** Anything with a stop() or a close(). */
export interface Stoppable {
  stop?(): unknown;
  close?(): unknown;
}

/** A benchmark's Redis and what to clean up with it (withRedis). */
export interface RedisScope {
  url: string;
  isolated: boolean;
  /** Names a key prefix (bench-<name>-<pid>) whose keys are removed at the end. */
  prefix(name: string): string;
  /** Hands over things to stop at the end; returns the first. */
  stopLater<T extends Stoppable>(thing: T, ...more: Stoppable[]): T;
  /** A client, disconnected at the end. */
  connect(): Redis;
}

/**
 * Runs `fn(redis)` with a Redis of its own. Afterwards, however `fn` ended, everything
 * handed over is stopped, the prefixes' keys are removed (on the shared Redis; stopping a
 * private one does as much) and the Redis is stopped.
 */
export async function withRedis<T>(fn: (redis: RedisScope) => Promise<T>): Promise<T> {
  const server = await startRedis();
  const prefixes: string[] = [];
  const stoppable: Stoppable[] = [];
  const scope: RedisScope = {
    url: server.url,
    isolated: server.isolated,
    prefix(name) {
      const prefix = `bench-${name}-${process.pid}`;
      prefixes.push(prefix);
      return prefix;
    },
    stopLater(thing, ...more) {
      stoppable.push(thing, ...more);
      return thing;
    },
    connect() {
      const client = connect(server.url);
      stoppable.push({ stop: async () => client.disconnect() });
      return client;
    },
  };
  try {
    return await fn(scope);
  } finally {
    await stopAll(stoppable);
    if (!server.isolated) await cleanPrefixes(server.url, prefixes);
    await server.stop();
  }
}

export function connect(url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: null });
  client.on('error', () => undefined);
  return client;
}

/** Busy and total CPU time of the whole machine so far (ms, all cores), from /proc/stat; undefined elsewhere. */
export function machineCpuMs(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    const tick = 10; // USER_HZ is 100 on Linux
    const busy = user + nice + system + irq + softirq + steal;
    return { busy: busy * tick, total: (busy + idle + iowait) * tick };
  } catch {
    return undefined;
  }
}

/** Redis' own CPU time (user + system, ms) from INFO cpu. */
export async function redisCpuMs(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** Removes every key under the prefixes. */
async function cleanPrefixes(url: string, prefixes: string[]): Promise<void> {
  const client = connect(url);
  try {
    for (const prefix of prefixes) await removePrefix(client, prefix).catch(() => undefined);
  } finally {
    client.disconnect();
  }
}

// ---------------------------------------------------------------------------------------
// Jobs: no_action outcomes through the real producer, and the same job data for raw BullMQ.

export function noActionOutcome(id: number, at = Date.now()): ConversationOutcome {
  return {
    conversationId: `bench-${id}`,
    endedAt: new Date(at - 1_000).toISOString(),
    outcome: 'no_action',
    customer: {
      id: `cus-${id % 1000}`,
      name: 'Ada Lovelace',
      email: 'ada@example.com',
      phone: '+14155550100',
      locale: 'en-GB',
    },
    sentiment: 'neutral',
    summary: 'Customer asked about opening hours; nothing to follow up.',
    metadata: { agent: 'voice-bot-3', campaign: 'winter-check' },
  };
}

/** Runs `fn(i)` for i in [0, n) with at most `concurrency` at once. */
export async function pool(n: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(0, Math.min(n, concurrency)) }, async () => {
    while (next < n) {
      const i = next++;
      await fn(i);
    }
  });
  await Promise.all(lanes);
}

export interface Enqueuer {
  enqueue(n: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Enqueues through aftercall's producer: one `conversationEnded` per no_action outcome
 * (one update_crm task each), 200 calls in flight. `offset` keeps conversation ids unique.
 */
export function oursEnqueuer(url: string, prefix: string): Enqueuer {
  const producer = createProducer({ redisUrl: url, prefix, timeoutMs: 30_000 });
  let offset = 0;
  let connected = false;
  return {
    async enqueue(n) {
      const base = offset;
      offset += n;
      const at = Date.now();
      // The first call alone, so that the connection is made before the load starts.
      const one = async (i: number) => {
        const result = await producer.conversationEnded(noActionOutcome(base + i, at));
        if (result.tasks.length !== 1 || !result.tasks[0]!.created)
          throw new Error(`unexpected enqueue result ${JSON.stringify(result)}`);
      };
      const first = !connected && n > 0 ? 1 : 0;
      if (first) {
        await one(0);
        connected = true;
      }
      await pool(n - first, 200, (j) => one(j + first));
    },
    close: () => producer.close(),
  };
}

/** The data and options aftercall's producer gives an update_crm job, for raw BullMQ. */
export function rawJob(id: number, at: number): { name: string; data: unknown; opts: JobsOptions } {
  const outcome = noActionOutcome(id, at);
  const task = planOutcome(outcome, resolveTaskConfigs(), at).tasks[0]!;
  return {
    name: TYPE,
    data: task.data,
    opts: {
      jobId: task.jobId,
      timestamp: at,
      attempts: task.attempts,
      backoff: { type: 'exponential', delay: 2_000 },
      removeOnComplete: { age: 86_400 },
      removeOnFail: false,
    },
  };
}

/** Enqueues the same jobs with raw BullMQ: Queue.addBulk in chunks of 1,000 (or Queue.add one by one). */
export function rawEnqueuer(url: string, prefix: string, { bulk = true } = {}): Enqueuer {
  const connection = connect(url);
  const queue = new Queue(QUEUE, { connection, prefix });
  queue.on('error', () => undefined);
  let offset = 0;
  return {
    async enqueue(n) {
      const base = offset;
      offset += n;
      const at = Date.now();
      if (bulk) {
        for (let start = 0; start < n; start += 1_000) {
          const jobs = [];
          for (let i = start; i < Math.min(n, start + 1_000); i += 1) jobs.push(rawJob(base + i, at));
          await queue.addBulk(jobs);
        }
      } else {
        await pool(n, 200, async (i) => {
          const job = rawJob(base + i, at);
          await queue.add(job.name, job.data, job.opts);
        });
      }
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

export interface QueueControl {
  pause(): Promise<void>;
  resume(): Promise<void>;
  completed(): Promise<number>;
  failed(): Promise<number>;
  client: Redis;
  close(): Promise<void>;
}

/** Pause, resume and count one queue (either side's). */
export function queueControl(url: string, prefix: string): QueueControl {
  const connection = connect(url);
  const queue = new Queue(QUEUE, { connection, prefix });
  queue.on('error', () => undefined);
  const key = (name: string) => `${prefix}:${QUEUE}:${name}`;
  return {
    pause: () => queue.pause(),
    resume: () => queue.resume(),
    completed: () => connection.zcard(key('completed')),
    failed: () => connection.zcard(key('failed')),
    client: connection,
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

// ---------------------------------------------------------------------------------------
// Child processes: a worker (worker-process.ts) and the slow HTTP receiver
// (delay-server.ts), each driven by JSON messages over an IPC channel (protocol.ts).

const BUILD_DIR = fileURLToPath(new URL('./.build/', import.meta.url));
const scripts = new Map<string, string>();

/**
 * A child's script as plain JavaScript: TypeScript strips its types (transpileModule: no
 * type-check, that is `npm run typecheck`'s job) into bench/.build/, inside the package, so
 * that `aftercall` (the package's own name), bullmq and ioredis resolve from there as from
 * bench/. Once per run and script.
 */
async function childScript(name: 'worker-process' | 'delay-server'): Promise<string> {
  const known = scripts.get(name);
  if (known) return known;
  const { default: ts } = await import('typescript');
  const source = readFileSync(new URL(`./${name}.ts`, import.meta.url), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    fileName: `${name}.ts`,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  mkdirSync(BUILD_DIR, { recursive: true });
  const path = join(BUILD_DIR, `${name}.mjs`);
  // Written aside and renamed: another run may be starting the same script.
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, outputText);
  renameSync(temporary, path);
  scripts.set(name, path);
  return path;
}

export interface Controlled {
  pid: number | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: string;
  /** Sends a command; resolves with the child's reply. */
  request<R extends Reply = Reply>(cmd: Command['cmd'], args?: Record<string, unknown>): Promise<R>;
  /** Resolves with the first unsolicited message that satisfies `predicate`. */
  waitFor<M extends ChildMessage>(predicate: (message: ChildMessage) => message is M, timeoutMs?: number): Promise<M>;
  onMessage(listener: (message: ChildMessage) => void): void;
  /** Graceful close (a worker finishes its active jobs), then the process exits; SIGKILL after 15 s. */
  stop(): Promise<void>;
}

function controlled(child: ChildProcess, label: string): Controlled {
  let sequence = 0;
  const pending = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  const listeners = new Set<(message: ChildMessage) => void>();
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const failure = () =>
    new Error(
      `${label} (pid ${child.pid}) exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr.trim() || '(empty)'}`,
    );
  child.on('message', (message: ChildMessage) => {
    if ('reply' in message && pending.has(message.reply)) {
      const { resolve, reject } = pending.get(message.reply)!;
      pending.delete(message.reply);
      if (message.error) reject(new Error(`${label}: ${message.error}`));
      else resolve(message);
      return;
    }
    for (const listener of listeners) listener(message);
  });
  void exited.then(() => {
    for (const { reject } of pending.values()) reject(failure());
    pending.clear();
  });
  return {
    pid: child.pid,
    exited,
    get stderr() {
      return stderr;
    },
    request<R extends Reply>(cmd: Command['cmd'], args: Record<string, unknown> = {}) {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected) return Promise.reject(failure());
      const id = ++sequence;
      return new Promise<R>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (reply: Reply) => void, reject });
        child.send({ id, cmd, ...args });
      });
    },
    waitFor<M extends ChildMessage>(predicate: (message: ChildMessage) => message is M, timeoutMs = 30_000) {
      return new Promise<M>((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`${label}: no such message within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const listener = (message: ChildMessage) => {
          if (!predicate(message)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(message);
        };
        listeners.add(listener);
        void exited.then(() => {
          if (!listeners.has(listener)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          reject(failure());
        });
      });
    },
    onMessage(listener) {
      listeners.add(listener);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      if (child.connected) child.send({ id: 0, cmd: 'close' });
      else child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    },
  };
}

const isEvent =
  <E extends string>(event: E) =>
  (message: ChildMessage): message is Extract<ChildMessage, { event: E }> =>
    'event' in message && message.event === event;

export interface WorkerProcess extends Controlled {
  side: 'ours' | 'raw';
  logPath: string | undefined;
  /** Bytes and lines the process logged so far (file logs only). */
  logStats(): { bytes: number; lines: number } | undefined;
}

export interface WorkerProcessStart {
  side: 'ours' | 'raw';
  url: string;
  prefix: string;
  concurrency: number;
  port?: WorkerProcessOptions['port'];
  webhookUrl?: string;
  /** ours only: 'file' (stdout to a temp file, the default) or 'null' (/dev/null). */
  log?: 'file' | 'null';
  sampleEvery?: number;
  gcEvery?: number;
  /** Keep each job's handler start and end for the latency breakdown (latency-breakdown.ts). */
  timings?: boolean;
  nodeArgs?: string[];
  /** raw only: small objects the worker keeps alive from its start (WorkerProcessOptions.ballast). */
  ballast?: number;
  /** More environment for the process (ours: loadConfig reads it), e.g. CRM_WEBHOOK_RATE_LIMIT. */
  env?: Record<string, string>;
}

/**
 * Starts one worker process (worker-process.ts). The environment of an 'ours' process is
 * what loadConfig reads: LOG_LEVEL info (the production default), METRICS_PORT 0, no sweeper.
 */
export async function startWorkerProcess({
  side,
  url,
  prefix,
  concurrency,
  port = 'noop',
  webhookUrl,
  sampleEvery = 0,
  gcEvery = 0,
  timings = false,
  ballast = 0,
  log = 'file',
  nodeArgs = [],
  env = {},
}: WorkerProcessStart): Promise<WorkerProcess> {
  const script = await childScript('worker-process');
  let logPath: string | undefined;
  let stdout: 'ignore' | number = 'ignore';
  if (side === 'ours') {
    if (log === 'file') {
      logPath = join(tempDir('aftercall-bench-log-'), 'worker.log');
      stdout = openSync(logPath, 'w');
    } else {
      stdout = openSync('/dev/null', 'w');
    }
  }
  const options: WorkerProcessOptions = {
    side,
    prefix,
    concurrency,
    port,
    webhookUrl,
    sampleEvery,
    gcEvery,
    timings,
    ballast,
  };
  const child = track(
    spawn(process.execPath, [...nodeArgs, script, JSON.stringify(options)], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: url,
        AFTERCALL_PREFIX: prefix,
        LOG_LEVEL: 'info',
        METRICS_PORT: '0',
        SWEEPER_ENABLED: 'false',
        ...(webhookUrl && { WEBHOOK_SECRET, CRM_WEBHOOK_URL: webhookUrl }),
        ...env,
      },
      stdio: ['ignore', stdout, 'pipe', 'ipc'],
    }),
  );
  if (typeof stdout === 'number') closeSync(stdout);
  const worker = controlled(child, `${side} worker`);
  try {
    await worker.waitFor(isEvent('ready'), 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    ...worker,
    // the getter, not its value at the time of the spread
    get stderr() {
      return worker.stderr;
    },
    side,
    logPath,
    logStats() {
      if (!logPath) return undefined;
      const bytes = statSync(logPath).size;
      const text = readFileSync(logPath, 'utf8');
      let lines = 0;
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines += 1;
      return { bytes, lines };
    },
    async stop() {
      await worker.stop();
      if (logPath) removeTempDir(join(logPath, '..'));
    },
  };
}

export interface DelayServer extends Controlled {
  url: string;
}

/** The slow receiver: answers every request after `delayMs`, in a process of its own. */
export async function startDelayServer(delayMs: number): Promise<DelayServer> {
  const script = await childScript('delay-server');
  const child = track(
    spawn(process.execPath, [script, String(delayMs)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] }),
  );
  const server = controlled(child, 'delay server');
  try {
    const { port } = await server.waitFor(isEvent('listening'), 10_000);
    return { ...server, url: `http://127.0.0.1:${port}/crm` };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** Stops (or closes) everything given, ignoring what already stopped; never throws. */
export async function stopAll(...things: (Stoppable | Stoppable[] | undefined)[]): Promise<void> {
  await Promise.all(
    things
      .flat()
      .filter((thing): thing is Stoppable => Boolean(thing))
      .map((thing) =>
        Promise.resolve()
          .then(() => (thing.stop ? thing.stop() : thing.close?.()))
          .catch(() => undefined),
      ),
  );
}

// ---------------------------------------------------------------------------------------
// One side of a comparison, a measured round, and the rounds of a benchmark.

export interface SideStart extends Omit<WorkerProcessStart, 'side'> {
  side: 'ours' | 'raw';
  /** Worker processes; default 1. */
  processes?: number;
  /** raw only: Queue.addBulk (default) or Queue.add one by one. */
  bulk?: boolean;
  /** Measure Redis' CPU in each round; default true. */
  redisCpu?: boolean;
  /** Measure this receiver's CPU in each round. */
  delayServer?: DelayServer;
}

export interface Side {
  side: 'ours' | 'raw';
  workers: WorkerProcess[];
  worker: WorkerProcess;
  enqueuer: Enqueuer;
  control: QueueControl;
  run(n: number, options?: Partial<Pick<RoundOptions, 'state' | 'pollMs' | 'timeoutMs'>>): Promise<Round>;
  stop(): Promise<void>;
}

/**
 * One side of a comparison, started in this order: `processes` worker processes on the
 * queue under `prefix` (startWorkerProcess with the other options), the side's enqueuer
 * (ours: the producer; raw: Queue.addBulk, or Queue.add one by one when `bulk` is false)
 * and the queue's control. run(n, options) measures one round of n jobs (measureRound:
 * with Redis' CPU unless `redisCpu` is false, and the receiver's when given a
 * `delayServer`); stop() stops them all.
 */
export async function startSide({
  side,
  url,
  prefix,
  processes = 1,
  bulk = true,
  redisCpu = true,
  delayServer,
  ...workerOptions
}: SideStart): Promise<Side> {
  const started = await Promise.allSettled(
    Array.from({ length: processes }, () => startWorkerProcess({ side, url, prefix, ...workerOptions })),
  );
  const workers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) {
    await stopAll(workers);
    throw failed.reason;
  }
  const enqueuer = side === 'ours' ? oursEnqueuer(url, prefix) : rawEnqueuer(url, prefix, { bulk });
  const control = queueControl(url, prefix);
  return {
    side,
    workers,
    worker: workers[0]!,
    enqueuer,
    control,
    run: (n, options) =>
      measureRound({
        control,
        enqueue: (count) => enqueuer.enqueue(count),
        workers,
        n,
        redisClient: redisCpu ? control.client : undefined,
        delayServer,
        ...(workerOptions.timings && delayServer && { breakdownOf: `${prefix}:${QUEUE}` }),
        ...options,
      }),
    stop: () => stopAll(workers, enqueuer, control),
  };
}

/** Waits for `promise` at most `ms`: true when it resolved in time, false when not (its rejection is thrown). */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface RoundOptions {
  control: QueueControl;
  enqueue(n: number): Promise<void>;
  workers: WorkerProcess[];
  n: number;
  /** What a finished job becomes: 'completed' (default) or 'failed' (dead-lettered). */
  state?: 'completed' | 'failed';
  redisClient?: Redis;
  delayServer?: DelayServer;
  /**
   * The queue's key (`<prefix>:<queue>`): put the latency breakdown of the round together
   * (workers started with `timings`, and a delayServer).
   */
  breakdownOf?: string;
  pollMs?: number;
  timeoutMs?: number;
}

export interface Round {
  n: number;
  seconds: number;
  jobsPerSecond: number;
  perWorker: number[];
  cpu: {
    wallMs: number;
    workersMs: number[];
    /** The workers' garbage collection pauses (ms) and collections, summed over the workers. */
    workersGcMs?: number;
    workersGcCount?: number;
    redisMs: number | undefined;
    serverMs: number | undefined;
    harnessMs: number;
    machineBusyMs: number | undefined;
    machineTotalMs: number | undefined;
  };
  /** With `breakdownOf`: where one job's time went (latency-breakdown.ts). */
  breakdown?: LatencyBreakdown;
}

/**
 * One round: the queue is paused while `n` jobs are enqueued, then the workers are marked
 * (CPU baselines), the queue is resumed and the round lasts until `n` more jobs are
 * finished (completed, or dead-lettered when `state` is 'failed'), or fails after
 * `timeoutMs`. Throughput is n / (the last job's finishing time in the workers - the
 * resume). Returns CPU use of each part.
 */
export async function measureRound({
  control,
  enqueue,
  workers,
  n,
  state = 'completed',
  redisClient,
  delayServer,
  breakdownOf,
  pollMs = 20,
  timeoutMs = 600_000,
}: RoundOptions): Promise<Round> {
  const finishedCount = state === 'failed' ? control.failed : control.completed;
  await control.pause();
  const before = await finishedCount();
  await enqueue(n);
  await Promise.all(workers.map((worker) => worker.request('mark')));
  if (delayServer) await delayServer.request('mark');
  const redisCpu0 = redisClient ? await redisCpuMs(redisClient) : undefined;
  const scripts0 = breakdownOf ? await scriptCalls(control.client) : 0;
  const harnessCpu0 = process.cpuUsage();
  const machine0 = machineCpuMs();
  const started = now();
  await control.resume();
  const timedOut = (done: number) =>
    new Error(`round did not finish within ${timeoutMs} ms (${done - before} of ${n})`);
  if (workers.length === 1) {
    // The worker replies once it has finished n jobs since the mark.
    if (!(await within(workers[0]!.request('expect', { n }), timeoutMs))) throw timedOut(await finishedCount());
  } else {
    await waitUntil(finishedCount, (done) => done >= before + n, `${n} finished jobs`, timeoutMs, pollMs).catch(
      async () => {
        throw timedOut(await finishedCount());
      },
    );
  }
  const reports = await Promise.all(workers.map((worker) => worker.request<WorkerReport>('report')));
  const wallMs = Math.max(...reports.map((report) => report.lastAt ?? Number.NaN)) - started;
  const harnessCpu = process.cpuUsage(harnessCpu0);
  const machine1 = machineCpuMs();
  const server = delayServer ? await delayServer.request<ServerReport>('report') : undefined;
  const redisCpu = redisClient && redisCpu0 !== undefined ? (await redisCpuMs(redisClient)) - redisCpu0 : undefined;
  const seconds = wallMs / 1000;
  // After the round: the timestamps each process kept, put together.
  const latency =
    breakdownOf && delayServer
      ? await breakdown({
          workers: await Promise.all(workers.map((worker) => worker.request<WorkerTimings>('timings'))),
          server: await delayServer.request<ServerTimings>('timings'),
          client: control.client,
          queueKey: breakdownOf,
          scriptCallsDelta: (await scriptCalls(control.client)) - scripts0,
        })
      : undefined;
  return {
    ...(latency && { breakdown: latency }),
    n,
    seconds,
    jobsPerSecond: n / seconds,
    perWorker: reports.map((report) => report.sinceMark),
    cpu: {
      wallMs,
      workersMs: reports.map((report) => report.cpuMs),
      workersGcMs: reports.reduce((sum, report) => sum + (report.gcMs ?? Number.NaN), 0),
      workersGcCount: reports.reduce((sum, report) => sum + (report.gcCount ?? Number.NaN), 0),
      redisMs: redisCpu,
      serverMs: server?.cpuMs,
      harnessMs: (harnessCpu.user + harnessCpu.system) / 1000,
      // every process on the machine, ours and others' (Linux only)
      machineBusyMs: machine0 && machine1 ? machine1.busy - machine0.busy : undefined,
      machineTotalMs: machine0 && machine1 ? machine1.total - machine0.total : undefined,
    },
  };
}

/**
 * The rounds of a comparison: one warm-up round of `warmup` jobs per side, then `rounds`
 * timed rounds of `jobs`, the sides alternating which goes first, each timed round logged
 * as "<label> <side> round <i>: <jobs/s> jobs/s". `sides` maps a name to a side
 * (startSide); returns each name's timed rounds (measureRound's results).
 */
export async function alternateRounds<Name extends string>({
  sides,
  warmup,
  jobs,
  rounds,
  label,
}: {
  sides: Record<Name, Side>;
  warmup: number;
  jobs: number;
  rounds: number;
  label: string;
}): Promise<Record<Name, Round[]>> {
  const names = Object.keys(sides) as Name[];
  for (const name of names) await sides[name].run(warmup);
  const results = Object.fromEntries(names.map((name) => [name, [] as Round[]])) as Record<Name, Round[]>;
  for (let round = 0; round < rounds; round += 1) {
    for (const name of alternating(round, names)) {
      const result = await sides[name].run(jobs);
      results[name].push(result);
      log(`${label} ${name} round ${round + 1}: ${result.jobsPerSecond.toFixed(0)} jobs/s`);
    }
  }
  return results;
}

/** Median and spread of a list (acrossRounds), plus the raw values. */
export function spread(values: number[]): Spread & { values: number[] } {
  return { ...acrossRounds(values), values };
}

export interface CpuShares {
  workers: number;
  perWorker: number[];
  redis: number | undefined;
  server: number | undefined;
  harness: number;
  machine: number;
  allProcesses: number | undefined;
}

/** CPU use over a round as a share of one core, by part, and of the whole machine. */
export function cpuShares(round: Round, cores: number): CpuShares {
  const { wallMs, workersMs, redisMs, serverMs, harnessMs, machineBusyMs, machineTotalMs } = round.cpu;
  const share = (ms: number) => ms / wallMs;
  const workers = workersMs.reduce((sum, ms) => sum + ms, 0);
  const total = workers + (redisMs ?? 0) + (serverMs ?? 0) + harnessMs;
  return {
    workers: share(workers),
    perWorker: workersMs.map(share),
    redis: redisMs === undefined ? undefined : share(redisMs),
    server: serverMs === undefined ? undefined : share(serverMs),
    harness: share(harnessMs),
    machine: total / wallMs / cores,
    // the whole machine, every process included (others' too): busy share of all cores
    allProcesses: machineBusyMs === undefined || !machineTotalMs ? undefined : machineBusyMs / machineTotalMs,
  };
}

export interface CpuMedians {
  workers: number;
  perWorker: number;
  /** Absent when not measured. */
  redis?: number;
  server?: number;
  harness: number;
  machine: number;
  allProcesses: number;
  workerMsPerJob: number;
  redisMsPerJob: number;
  /** The workers' garbage collection pauses per job (ms; NaN when not reported), and collections per 1,000 jobs. */
  gcMsPerJob: number;
  gcPerThousandJobs: number;
}

/**
 * Medians over rounds of the CPU shares (cpuShares; `perWorker`: the busiest worker's) and
 * of CPU ms per job, the workers' together and Redis'. Each benchmark reports the keys it needs.
 */
export function cpuMedians(rounds: Round[], cores: number): CpuMedians {
  const shares = rounds.map((round) => cpuShares(round, cores));
  function median(pick: (s: CpuShares) => number): number;
  function median(pick: (s: CpuShares) => number | undefined): number | undefined;
  function median(pick: (s: CpuShares) => number | undefined) {
    const values = shares.map(pick);
    return values.every((value) => value === undefined)
      ? undefined
      : acrossRounds(values.map((value) => value ?? Number.NaN)).median;
  }
  const perJob = (pick: (cpu: Round['cpu']) => number | undefined) =>
    acrossRounds(rounds.map((round) => (pick(round.cpu) ?? Number.NaN) / round.n)).median;
  return {
    workers: median((s) => s.workers),
    perWorker: median((s) => Math.max(...s.perWorker)),
    redis: median((s) => s.redis),
    server: median((s) => s.server),
    harness: median((s) => s.harness),
    machine: median((s) => s.machine),
    allProcesses: median((s) => s.allProcesses ?? Number.NaN),
    workerMsPerJob: perJob((cpu) => cpu.workersMs.reduce((sum, ms) => sum + ms, 0)),
    redisMsPerJob: perJob((cpu) => cpu.redisMs),
    gcMsPerJob: perJob((cpu) => cpu.workersGcMs),
    gcPerThousandJobs: perJob((cpu) => cpu.workersGcCount) * 1000,
  };
}

export { log, sleep };
