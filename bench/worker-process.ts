/**
 * One worker process for the benchmarks, started by bench/harness.ts:
 *   node <compiled worker-process.mjs> '{"side":"ours"|"raw","prefix":...,"concurrency":50,"port":"noop",...}'
 * (the options: WorkerProcessOptions in protocol.ts).
 *
 * It runs as plain JavaScript (the harness strips the types with TypeScript before it
 * starts one) and takes aftercall from the built package by its name, `aftercall`, through
 * package.json's exports: the code and the path a user's worker runs, with no TypeScript
 * loader in the measured process (a loader adds a thread, memory and start-up work that
 * the throughput, memory and scaling figures would count). Its types come from the source
 * the package is built from. It imports nothing of bench/ but types, so it runs on its own.
 *
 * side 'ours': aftercall's startWorker serving update_crm, configured by loadConfig from
 *   this process's environment (REDIS_URL, AFTERCALL_PREFIX, LOG_LEVEL, WEBHOOK_SECRET,
 *   CRM_WEBHOOK_URL...). Its log lines go to this process's stdout, which the harness
 *   points at a file or /dev/null.
 * side 'raw': a plain BullMQ Worker on the same queue name, with a no-op processor, or one
 *   that POSTs the job's data to the same receiver with fetch.
 *
 * It answers the harness's commands (protocol.ts): mark (reset the count and CPU baseline),
 * expect {n} (reply once n jobs finished since the mark), report (jobs finished since the
 * mark, the last one's finishing time, CPU ms since the mark), timings (each job's handler
 * start and end since the mark, kept only with `timings`), close (graceful shutdown,
 * then exit). It sends {event:'ready'} once running and {event:'sample'} every
 * `sampleEvery` jobs (after a forced full GC every `gcEvery` jobs, with --expose-gc). It
 * exits when the harness goes away.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type * as Aftercall from '../src/index.js';
import type { ChildMessage, Command, MemorySample, WorkerProcessOptions } from './protocol.js';

// The built package, by name (a variable, so that type-checking needs no dist/).
const PACKAGE: string = 'aftercall';
const { loadConfig, startWorker, TerminalDeliveryError } = (await import(PACKAGE)) as typeof Aftercall;

const options = JSON.parse(process.argv[2] ?? '{}') as WorkerProcessOptions;
const {
  side,
  prefix,
  concurrency,
  port,
  webhookUrl,
  sampleEvery = 0,
  gcEvery = 0,
  timings = false,
  ballast = 0,
} = options;
// Objects kept alive for the whole run (a control: raw BullMQ's worker with a larger heap).
const kept = Array.from({ length: ballast }, (_, i) => ({ i, s: `ballast-${i}`, o: { a: i } }));
const QUEUE_TYPE = 'update_crm';
const now = () => performance.timeOrigin + performance.now();
const send = (message: ChildMessage) => {
  if (process.connected) process.send?.(message);
};
const gc = (globalThis as { gc?: () => void }).gc;

// Garbage collection: the main thread's pauses since the mark (perf_hooks 'gc' entries).
let gcMs = 0;
let gcCount = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration;
    gcCount += 1;
  }
}).observe({ entryTypes: ['gc'] });

let count = 0;
let markCount = 0;
let markCpu = process.cpuUsage();
let lastAt: number | undefined;
let expectation: { id: number; n: number } | undefined;
// [jobId, handler start, handler end] since the mark, when asked for (the latency breakdown).
let jobTimings: [string, number, number][] = [];

function finished() {
  count += 1;
  lastAt = now();
  if (sampleEvery && count % sampleEvery === 0) {
    const { rss, heapUsed } = process.memoryUsage();
    const sample: MemorySample = { count, rss, heapUsed };
    if (gcEvery && count % gcEvery === 0 && gc) {
      // What stays after a full collection (needs --expose-gc).
      gc();
      const after = process.memoryUsage();
      sample.rssAfterGc = after.rss;
      sample.heapUsedAfterGc = after.heapUsed;
    }
    send({ event: 'sample', ...sample });
  }
  if (expectation && count - markCount >= expectation.n) {
    send({ reply: expectation.id });
    expectation = undefined;
  }
}

let close: () => Promise<void>;
if (side === 'ours') {
  const config = loadConfig(process.env);
  const ports: Parameters<typeof startWorker>[0]['ports'] = {};
  if (port === 'noop') ports[QUEUE_TYPE] = { provider: 'noop', deliver: async () => ({ provider: 'noop' }) };
  if (port === 'terminal') {
    ports[QUEUE_TYPE] = {
      provider: 'noop',
      deliver: async () => {
        throw new TerminalDeliveryError('recipient refused by the benchmark port (HTTP 422)', {
          provider: 'noop',
          status: 422,
        });
      },
    };
  }
  const fleet = await startWorker({
    config,
    queues: [QUEUE_TYPE],
    concurrency,
    ports,
    sweeper: false,
    metricsPort: 0,
    onOutcome: (event) => {
      if (event.result === 'completed' || event.result === 'dead_lettered') {
        if (timings) {
          const end = now();
          jobTimings.push([event.jobId, end - event.durationMs, end]);
        }
        finished();
      }
    },
  });
  await fleet.ready;
  close = () => fleet.close();
} else if (side === 'raw') {
  const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
  const processor =
    port === 'webhook'
      ? async (job: Job) => {
          const start = timings ? now() : 0;
          const response = await fetch(webhookUrl!, {
            method: 'POST',
            // The idempotency key, as aftercall's webhook sends it: the receiver's timings name the job.
            headers: { 'content-type': 'application/json', 'idempotency-key': job.data.idempotencyKey },
            body: JSON.stringify(job.data),
          });
          await response.arrayBuffer();
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          if (timings) jobTimings.push([job.id!, start, now()]);
          finished();
          return { status: response.status };
        }
      : port === 'terminal'
        ? async () => {
            finished();
            throw new UnrecoverableError('recipient refused by the benchmark port (HTTP 422)');
          }
        : async () => {
            finished();
            return { provider: 'noop' };
          };
  const worker = new Worker(`{${QUEUE_TYPE}}`, processor, { connection, prefix, concurrency });
  worker.on('error', (error) => process.stderr.write(`worker error: ${error.message}\n`));
  await worker.waitUntilReady();
  close = async () => {
    await worker.close();
    await connection.quit().catch(() => connection.disconnect());
  };
} else {
  throw new Error(`unknown side ${String(side)}`);
}

let closing: Promise<void> | undefined;
const shutdown = () => {
  closing ??= close().catch((error: Error) => {
    process.stderr.write(`close: ${error.message}\n`);
  });
  return closing;
};

process.on('message', async (message: Command) => {
  const { id } = message;
  try {
    if (message.cmd === 'mark') {
      markCount = count;
      markCpu = process.cpuUsage();
      gcMs = 0;
      gcCount = 0;
      lastAt = undefined;
      jobTimings = [];
      send({ reply: id });
    } else if (message.cmd === 'timings') {
      send({ reply: id, jobs: jobTimings });
    } else if (message.cmd === 'expect') {
      if (count - markCount >= message.n) send({ reply: id });
      else expectation = { id, n: message.n };
    } else if (message.cmd === 'report') {
      const cpu = process.cpuUsage(markCpu);
      send({ reply: id, sinceMark: count - markCount, lastAt, cpuMs: (cpu.user + cpu.system) / 1000, gcMs, gcCount });
    } else if (message.cmd === 'close') {
      await shutdown();
      if (id) send({ reply: id });
      process.exit(0);
    } else {
      send({ reply: id, error: `unknown command ${(message as { cmd: string }).cmd}` });
    }
  } catch (error) {
    send({ reply: id, error: (error as Error).message });
  }
});
// The harness went away (or crashed): do not outlive it.
process.on('disconnect', () => {
  void shutdown().then(() => process.exit(0));
  setTimeout(() => process.exit(1), 10_000).unref();
});

send({ event: 'ready', pid: process.pid, kept: kept.length });
