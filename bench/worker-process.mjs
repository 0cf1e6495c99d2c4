// One worker process for the benchmarks, started by bench/harness.mjs:
//   node bench/worker-process.mjs '{"side":"ours"|"raw","prefix":...,"concurrency":50,"port":"noop"}'
//
// side 'ours': aftercall's startWorker (from dist/) serving update_crm, configured by
//   loadConfig from this process's environment (REDIS_URL, AFTERCALL_PREFIX, LOG_LEVEL,
//   WEBHOOK_SECRET, CRM_WEBHOOK_URL...). Its log lines go to this process's stdout, which
//   the harness points at a file or /dev/null.
// side 'raw': a plain BullMQ Worker on the same queue name, with a no-op processor, or
//   one that POSTs the job's data to the same receiver with fetch.
// port: 'noop' (an in-process no-op delivery), 'terminal' (every delivery refused, so
//   every job is dead-lettered; raw: fails at once with UnrecoverableError), 'webhook' (ours: the real signed webhook;
//   raw: a plain fetch).
//
// It answers the harness's JSON messages over the IPC channel (each reply carries the
// request's id): mark (reset the count and CPU baseline), expect {n} (reply once n jobs
// finished since the mark), report {sinceMark, lastAt, cpuMs} (jobs finished since the
// mark, the last one's finishing time, CPU ms since the mark), close (graceful shutdown,
// then exit). It also sends {event:'ready'} once running and {event:'sample', count, rss,
// heapUsed} every `sampleEvery` jobs (with rssAfterGc and heapUsedAfterGc after a forced
// full GC every `gcEvery` jobs, when started with --expose-gc). It exits when the harness
// goes away.
import { Redis } from 'ioredis';
import { UnrecoverableError, Worker } from 'bullmq';
import { loadConfig, startWorker, TerminalDeliveryError } from '../dist/src/index.js';

const options = JSON.parse(process.argv[2] ?? '{}');
const { side, prefix, concurrency, port, webhookUrl, sampleEvery = 0, gcEvery = 0 } = options;
const QUEUE_TYPE = 'update_crm';
const now = () => performance.timeOrigin + performance.now();
const send = (message) => {
  if (process.connected) process.send(message);
};

let count = 0;
let markCount = 0;
let markCpu = process.cpuUsage();
let lastAt;
let expectation;

function finished() {
  count += 1;
  lastAt = now();
  if (sampleEvery && count % sampleEvery === 0) {
    const { rss, heapUsed } = process.memoryUsage();
    const sample = { count, rss, heapUsed };
    if (gcEvery && count % gcEvery === 0 && globalThis.gc) {
      // What stays after a full collection (needs --expose-gc).
      globalThis.gc();
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

let close;
if (side === 'ours') {
  const config = loadConfig(process.env);
  const ports = {};
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
      if (event.result === 'completed' || event.result === 'dead_lettered') finished();
    },
  });
  await fleet.ready;
  close = () => fleet.close();
} else if (side === 'raw') {
  const connection = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
  const processor =
    port === 'webhook'
      ? async (job) => {
          const response = await fetch(webhookUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(job.data),
          });
          await response.arrayBuffer();
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
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
  throw new Error(`unknown side ${side}`);
}

let closing;
const shutdown = () => {
  closing ??= close().catch((error) => process.stderr.write(`close: ${error.message}\n`));
  return closing;
};

process.on('message', async (message) => {
  const { id, cmd } = message;
  try {
    if (cmd === 'mark') {
      markCount = count;
      markCpu = process.cpuUsage();
      lastAt = undefined;
      send({ reply: id });
    } else if (cmd === 'expect') {
      if (count - markCount >= message.n) send({ reply: id });
      else expectation = { id, n: message.n };
    } else if (cmd === 'report') {
      const cpu = process.cpuUsage(markCpu);
      send({ reply: id, sinceMark: count - markCount, lastAt, cpuMs: (cpu.user + cpu.system) / 1000 });
    } else if (cmd === 'close') {
      await shutdown();
      if (id) send({ reply: id });
      process.exit(0);
    } else {
      send({ reply: id, error: `unknown command ${cmd}` });
    }
  } catch (error) {
    send({ reply: id, error: error.message });
  }
});
// The harness went away (or crashed): do not outlive it.
process.on('disconnect', () => {
  void shutdown().then(() => process.exit(0));
  setTimeout(() => process.exit(1), 10_000).unref();
});

send({ event: 'ready', pid: process.pid });
