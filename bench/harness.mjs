// Shared by the process-level benchmarks (throughput, io-concurrency, horizontal-scaling,
// redis-cost, memory): a private redis-server, worker child processes driven over IPC, the
// slow HTTP receiver, job builders, one side of a comparison and its rounds, and CPU
// accounting. Everything started here has a stop(); a benchmark runs inside withRedis,
// whose scope stops what it is handed and removes the keys of the prefixes it named.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { createProducer, planOutcome, resolveTaskConfigs } from '../dist/src/index.js';
import { acrossRounds, alternating, REDIS_URL, removePrefix } from './lib.mjs';

export const TYPE = 'update_crm';
export const QUEUE = `{${TYPE}}`;
export const WEBHOOK_SECRET = `whsec_${Buffer.from('aftercall-bench-secret-0123456789').toString('base64')}`;
const WORKER_SCRIPT = fileURLToPath(new URL('./worker-process.mjs', import.meta.url));
const DELAY_SERVER_SCRIPT = fileURLToPath(new URL('./delay-server.mjs', import.meta.url));

export const now = () => performance.timeOrigin + performance.now();

// Every child process and temp dir made here, so that nothing outlives the harness: the
// benchmarks stop them in `finally`; should the harness die first (an uncaught error,
// Ctrl-C), they are killed and removed on the way out.
const children = new Set();
const tempDirs = new Set();
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function cleanUpOnExit() {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanUpOnExit);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanUpOnExit();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}
function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), name));
  tempDirs.add(dir);
  return dir;
}
function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// Redis: a private redis-server (no persistence) in a temp dir, or the shared one.

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

let redisServerBinary;
function findRedisServer() {
  if (redisServerBinary === undefined) {
    const candidate = process.env.REDIS_SERVER ?? 'redis-server';
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    redisServerBinary = probe.status === 0 ? candidate : null;
  }
  return redisServerBinary;
}

/**
 * A Redis of the benchmark's own, so its numbers (commandstats, used_memory, CPU) are
 * not polluted by other users of the shared Redis. Falls back to REDIS_URL (isolated:
 * false) when redis-server is not installed.
 */
export async function startRedis() {
  const binary = findRedisServer();
  if (!binary) return { url: REDIS_URL, isolated: false, async stop() {} };
  const dir = tempDir('aftercall-bench-redis-');
  const port = await freePort();
  const child = track(
    spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--dir',
        dir,
        '--logfile',
        '',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    ),
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = `redis://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    removeTempDir(dir);
  };
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr}`);
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      const ok = await probe
        .connect()
        .then(() => probe.ping())
        .then(
          () => true,
          () => false,
        );
      probe.disconnect();
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer: ${stderr}`);
      await sleep(50);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, port, pid: child.pid, isolated: true, stop };
}

/** Where a benchmark ran, for the report: "on <this>". */
export function describeRedis(server) {
  return server.isolated
    ? 'a private redis-server without persistence'
    : "the shared Redis at REDIS_URL (redis-server not found), so other clients' load and commands may be counted";
}

/**
 * Runs `fn(redis)` with a Redis of its own. `redis` is the benchmark's scope: its `url` and
 * `isolated`; prefix(name) names a key prefix (bench-<name>-<pid>); stopLater(...things)
 * hands over what to stop (and returns the first); connect() opens a client, disconnected
 * at the end. Afterwards, however `fn` ended, everything handed over is stopped, the
 * prefixes' keys are removed (on the shared Redis; stopping a private one does as much)
 * and the Redis is stopped.
 */
export async function withRedis(fn) {
  const server = await startRedis();
  const prefixes = [];
  const stoppable = [];
  const scope = {
    url: server.url,
    isolated: server.isolated,
    prefix(name) {
      const prefix = `bench-${name}-${process.pid}`;
      prefixes.push(prefix);
      return prefix;
    },
    stopLater(...things) {
      stoppable.push(...things);
      return things[0];
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

export function connect(url) {
  const client = new Redis(url, { maxRetriesPerRequest: null });
  client.on('error', () => undefined);
  return client;
}

/** Busy and total CPU time of the whole machine so far (ms, all cores), from /proc/stat; undefined elsewhere. */
export function machineCpuMs() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
    const tick = 10; // USER_HZ is 100 on Linux
    const busy = user + nice + system + irq + softirq + steal;
    return { busy: busy * tick, total: (busy + idle + iowait) * tick };
  } catch {
    return undefined;
  }
}

/** Redis' own CPU time (user + system, ms) from INFO cpu. */
export async function redisCpuMs(client) {
  const info = await client.info('cpu');
  const field = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** Removes every key under the prefixes. */
async function cleanPrefixes(url, prefixes) {
  const client = connect(url);
  try {
    for (const prefix of prefixes) await removePrefix(client, prefix).catch(() => undefined);
  } finally {
    client.disconnect();
  }
}

// ---------------------------------------------------------------------------------------
// Jobs: no_action outcomes through the real producer, and the same job data for raw BullMQ.

export function noActionOutcome(id, at = Date.now()) {
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
export async function pool(n, concurrency, fn) {
  let next = 0;
  const lanes = Array.from({ length: Math.max(0, Math.min(n, concurrency)) }, async () => {
    while (next < n) {
      const i = next++;
      await fn(i);
    }
  });
  await Promise.all(lanes);
}

/**
 * Enqueues through aftercall's producer: one `conversationEnded` per no_action outcome
 * (one update_crm task each), 200 calls in flight. `offset` keeps conversation ids unique.
 */
export function oursEnqueuer(url, prefix) {
  const producer = createProducer({ redisUrl: url, prefix, timeoutMs: 30_000 });
  let offset = 0;
  let connected = false;
  return {
    async enqueue(n) {
      const base = offset;
      offset += n;
      const at = Date.now();
      // The first call alone, so that the connection is made before the load starts.
      const one = async (i) => {
        const result = await producer.conversationEnded(noActionOutcome(base + i, at));
        if (result.tasks.length !== 1 || !result.tasks[0].created)
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
export function rawJob(id, at) {
  const outcome = noActionOutcome(id, at);
  const task = planOutcome(outcome, resolveTaskConfigs(), at).tasks[0];
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
export function rawEnqueuer(url, prefix, { bulk = true } = {}) {
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

/** Pause, resume and count one queue (either side's). */
export function queueControl(url, prefix) {
  const connection = connect(url);
  const queue = new Queue(QUEUE, { connection, prefix });
  queue.on('error', () => undefined);
  const key = (name) => `${prefix}:${QUEUE}:${name}`;
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
// Child processes: a worker (bench/worker-process.mjs) and the slow HTTP receiver
// (bench/delay-server.mjs), each driven by JSON messages over an IPC channel.

function controlled(child, label) {
  let sequence = 0;
  const pending = new Map();
  const listeners = new Set();
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4_000);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const failure = () =>
    new Error(
      `${label} (pid ${child.pid}) exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr.trim() || '(empty)'}`,
    );
  child.on('message', (message) => {
    if (message.reply !== undefined && pending.has(message.reply)) {
      const { resolve, reject } = pending.get(message.reply);
      pending.delete(message.reply);
      if (message.error) reject(new Error(`${label}: ${message.error}`));
      else resolve(message);
      return;
    }
    for (const listener of listeners) listener(message);
  });
  exited.then(() => {
    for (const { reject } of pending.values()) reject(failure());
    pending.clear();
  });
  const api = {
    pid: child.pid,
    exited,
    get stderr() {
      return stderr;
    },
    /** Sends a command; resolves with the child's reply. */
    request(cmd, args = {}) {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected) return Promise.reject(failure());
      const id = ++sequence;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, ...args });
      });
    },
    /** Resolves with the first unsolicited message that satisfies `predicate`. */
    waitFor(predicate, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`${label}: no such message within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const listener = (message) => {
          if (!predicate(message)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(message);
        };
        listeners.add(listener);
        exited.then(() => {
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
    /** Graceful close (the worker finishes its active jobs), then the process exits; SIGKILL after 15 s. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      if (child.connected) child.send({ id: 0, cmd: 'close' });
      else child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    },
  };
  return api;
}

/**
 * Starts one worker process.
 *   side        'ours' (startWorker from dist/) or 'raw' (a BullMQ Worker)
 *   port        'noop', 'terminal' (every delivery refused: dead letters), 'webhook'
 *               (ours: the signed webhook to `webhookUrl`; raw: a fetch to `webhookUrl`)
 *   log         ours only: 'file' (stdout to a temp file, the default) or 'null' (/dev/null)
 *   sampleEvery, gcEvery, nodeArgs: memory samples (see worker-process.mjs)
 * The environment of an 'ours' process is what loadConfig reads: LOG_LEVEL info (the
 * production default), METRICS_PORT 0, no sweeper.
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
  log = 'file',
  nodeArgs = [],
}) {
  let logPath;
  let stdout = 'ignore';
  if (side === 'ours') {
    if (log === 'file') {
      logPath = join(tempDir('aftercall-bench-log-'), 'worker.log');
      stdout = openSync(logPath, 'w');
    } else {
      stdout = openSync('/dev/null', 'w');
    }
  }
  const options = { side, prefix, concurrency, port, webhookUrl, sampleEvery, gcEvery };
  const child = track(
    spawn(process.execPath, [...nodeArgs, WORKER_SCRIPT, JSON.stringify(options)], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: url,
        AFTERCALL_PREFIX: prefix,
        LOG_LEVEL: 'info',
        METRICS_PORT: '0',
        SWEEPER_ENABLED: 'false',
        ...(webhookUrl && { WEBHOOK_SECRET, CRM_WEBHOOK_URL: webhookUrl }),
      },
      stdio: ['ignore', stdout, 'pipe', 'ipc'],
    }),
  );
  if (typeof stdout === 'number') closeSync(stdout);
  const worker = controlled(child, `${side} worker`);
  try {
    await worker.waitFor((message) => message.event === 'ready', 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    ...worker,
    side,
    logPath,
    /** Bytes and lines the process logged so far (file logs only). */
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

/** The slow receiver: answers every request after `delayMs`, in a process of its own. */
export async function startDelayServer(delayMs) {
  const child = track(
    spawn(process.execPath, [DELAY_SERVER_SCRIPT, String(delayMs)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] }),
  );
  const server = controlled(child, 'delay server');
  try {
    const { port } = await server.waitFor((message) => message.event === 'listening', 10_000);
    return { ...server, url: `http://127.0.0.1:${port}/crm` };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** Stops (or closes) everything given, ignoring what already stopped; never throws. */
export async function stopAll(...things) {
  await Promise.all(
    things
      .flat()
      .filter(Boolean)
      .map((thing) =>
        Promise.resolve()
          .then(() => (thing.stop ?? thing.close).call(thing))
          .catch(() => undefined),
      ),
  );
}

// ---------------------------------------------------------------------------------------
// One side of a comparison, a measured round, and the rounds of a benchmark.

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
}) {
  const started = await Promise.allSettled(
    Array.from({ length: processes }, () => startWorkerProcess({ side, url, prefix, ...workerOptions })),
  );
  const workers = started.filter((result) => result.status === 'fulfilled').map((result) => result.value);
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) {
    await stopAll(workers);
    throw failed.reason;
  }
  const enqueuer = side === 'ours' ? oursEnqueuer(url, prefix) : rawEnqueuer(url, prefix, { bulk });
  const control = queueControl(url, prefix);
  return {
    side,
    workers,
    worker: workers[0],
    enqueuer,
    control,
    run: (n, options) =>
      measureRound({
        control,
        enqueue: enqueuer.enqueue,
        workers,
        n,
        redisClient: redisCpu ? control.client : undefined,
        delayServer,
        ...options,
      }),
    stop: () => stopAll(workers, enqueuer, control),
  };
}

/** Waits for `promise` at most `ms`: true when it resolved in time, false when not (its rejection is thrown). */
async function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
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
  pollMs = 20,
  timeoutMs = 600_000,
}) {
  const finishedCount = state === 'failed' ? control.failed : control.completed;
  await control.pause();
  const before = await finishedCount();
  await enqueue(n);
  await Promise.all(workers.map((worker) => worker.request('mark')));
  if (delayServer) await delayServer.request('mark');
  const redisCpu0 = redisClient ? await redisCpuMs(redisClient) : undefined;
  const harnessCpu0 = process.cpuUsage();
  const machine0 = machineCpuMs();
  const started = now();
  await control.resume();
  const deadline = Date.now() + timeoutMs;
  const timedOut = (done) => new Error(`round did not finish within ${timeoutMs} ms (${done - before} of ${n})`);
  if (workers.length === 1) {
    // The worker replies once it has finished n jobs since the mark.
    if (!(await within(workers[0].request('expect', { n }), timeoutMs))) throw timedOut(await finishedCount());
  } else {
    for (;;) {
      const done = await finishedCount();
      if (done >= before + n) break;
      if (Date.now() > deadline) throw timedOut(done);
      await sleep(pollMs);
    }
  }
  const reports = await Promise.all(workers.map((worker) => worker.request('report')));
  const wallMs = Math.max(...reports.map((report) => report.lastAt)) - started;
  const harnessCpu = process.cpuUsage(harnessCpu0);
  const machine1 = machineCpuMs();
  const server = delayServer ? await delayServer.request('report') : undefined;
  const redisCpu = redisClient ? (await redisCpuMs(redisClient)) - redisCpu0 : undefined;
  const seconds = wallMs / 1000;
  return {
    n,
    seconds,
    jobsPerSecond: n / seconds,
    perWorker: reports.map((report) => report.sinceMark),
    cpu: {
      wallMs,
      workersMs: reports.map((report) => report.cpuMs),
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
export async function alternateRounds({ sides, warmup, jobs, rounds, label }) {
  const names = Object.keys(sides);
  for (const name of names) await sides[name].run(warmup);
  const results = Object.fromEntries(names.map((name) => [name, []]));
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
export function spread(values) {
  return { ...acrossRounds(values), values };
}

/** CPU use over a round as a share of one core, by part, and of the whole machine. */
export function cpuShares(round, cores) {
  const { wallMs, workersMs, redisMs, serverMs, harnessMs, machineBusyMs, machineTotalMs } = round.cpu;
  const share = (ms) => (ms === undefined ? undefined : ms / wallMs);
  const workers = workersMs.reduce((sum, ms) => sum + ms, 0);
  const total = workers + (redisMs ?? 0) + (serverMs ?? 0) + harnessMs;
  return {
    workers: share(workers),
    perWorker: workersMs.map(share),
    redis: share(redisMs),
    server: share(serverMs),
    harness: share(harnessMs),
    machine: total / wallMs / cores,
    // the whole machine, every process included (others' too): busy share of all cores
    allProcesses: machineBusyMs === undefined || !machineTotalMs ? undefined : machineBusyMs / machineTotalMs,
  };
}

/**
 * Medians over rounds of the CPU shares (cpuShares; `perWorker`: the busiest worker's) and
 * of CPU ms per job, the workers' together and Redis'. Each benchmark reports the keys it needs.
 */
export function cpuMedians(rounds, cores) {
  const shares = rounds.map((round) => cpuShares(round, cores));
  const median = (pick) => acrossRounds(shares.map(pick)).median;
  const perJob = (pick) => acrossRounds(rounds.map((round) => pick(round.cpu) / round.n)).median;
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
  };
}

export function log(message) {
  process.stderr.write(`  ${message}\n`);
}
