// Memory, on a private redis-server.
//
// Redis: what one retained completed job (kept for the dedupe window, 24 h by default) and
// one dead-letter entry (kept until replayed or purged) cost. N update_crm tasks are
// enqueued (the producer; raw: Queue.addBulk with the same data and options) and processed
// by a worker process: a no-op delivery completes them; a delivery that always refuses
// (terminal) dead-letters them (raw: UnrecoverableError, into BullMQ's failed set). Two
// measures per task:
//   keys      MEMORY USAGE (SAMPLES 0) of every key of the queue, by kind: the job hashes,
//             and the sorted sets that list them (completed or failed, expiry index),
//             divided by N; the events stream and the per-queue counters are reported
//             apart (the stream is capped at about 10,000 entries per queue)
//   used      INFO used_memory after minus before, divided by N (allocator included)
//
// Worker: the RSS of one aftercall worker process (concurrency 50, no-op delivery, logging
// at info to /dev/null) over 200,000 jobs, fed by the producer so that the backlog stays
// under 10,000; sampled every 2,000 jobs, and every 20,000 jobs also right after a forced
// full GC (--expose-gc; about as often as V8 runs one by itself at this rate). The first
// 10 % are a warm-up. Flat within 10 % means: mean RSS over the last quarter of the samples
// within 10 % of the first quarter's (no trend), and the heap in use right after a full GC
// (what the process keeps, what a leak raises) within 10 % (max / min). RSS as sampled
// between collections swings with the heap's sawtooth, and memory a collection frees is
// not returned to the system at once: that band is reported, not judged.
import {
  describeRedis,
  log,
  oursEnqueuer,
  sleep,
  startSide,
  startWorkerProcess,
  stopAll,
  withRedis,
} from './harness.mjs';
import { CONCURRENCY } from './throughput.mjs';

const WARMUP_TASKS = 100;

async function usedMemory(client) {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)[1]);
}

async function scanKeys(client, pattern) {
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 5_000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

/** MEMORY USAGE of every key of the queue, summed by kind. */
async function keyUsage(client, prefix) {
  const base = `${prefix}:{update_crm}:`;
  const keys = await scanKeys(client, `${base}*`);
  const bytes = { jobs: 0, jobCount: 0, sets: 0, events: 0, other: 0 };
  const byKey = {};
  for (let start = 0; start < keys.length; start += 1_000) {
    const slice = keys.slice(start, start + 1_000);
    const pipeline = client.pipeline();
    for (const key of slice) pipeline.memory('USAGE', key, 'SAMPLES', 0);
    const replies = await pipeline.exec();
    slice.forEach((key, index) => {
      const size = Number(replies[index][1] ?? 0);
      const name = key.slice(base.length);
      if (/^(completed|failed|expiry|retrying|delayed|wait|active|paused|prioritized)$/.test(name)) {
        bytes.sets += size;
        byKey[name] = size;
      } else if (name === 'events') {
        bytes.events += size;
      } else if (/%3A/.test(name) && !name.includes(':')) {
        bytes.jobs += size;
        bytes.jobCount += 1;
      } else {
        bytes.other += size;
        byKey[name] = size;
      }
    });
  }
  return { ...bytes, byKey };
}

/** One side's Redis memory per task; its processes are stopped before the next side starts. */
async function redisPerTask({ redis, admin, side, port, tasks, label }) {
  const prefix = redis.prefix(`mem-${label}`);
  const { run, stop } = await startSide({
    side,
    url: redis.url,
    prefix,
    concurrency: CONCURRENCY,
    port,
    log: 'null',
    redisCpu: false,
  });
  try {
    const state = port === 'terminal' ? 'failed' : 'completed';
    // Warm-up: scripts loaded into Redis, connections made, the queue's own keys created;
    // used_memory is read after it.
    await run(WARMUP_TASKS, { state });
    await sleep(300);
    await admin.memory('PURGE').catch(() => undefined);
    const before = await usedMemory(admin);
    await run(tasks, { state });
    await sleep(300);
    await admin.memory('PURGE').catch(() => undefined);
    const after = await usedMemory(admin);
    const usage = await keyUsage(admin, prefix);
    const retained = tasks + WARMUP_TASKS;
    if (usage.jobCount !== retained)
      throw new Error(`${label}: expected ${retained} retained jobs, found ${usage.jobCount}`);
    return {
      tasks,
      retained,
      expiryIndexPerTask: (usage.byKey.expiry ?? 0) / retained,
      perTaskKeys: (usage.jobs + usage.sets) / retained,
      jobHash: usage.jobs / retained,
      setsPerTask: usage.sets / retained,
      usedMemoryPerTask: (after - before) / tasks,
      eventsStream: usage.events,
      otherKeys: usage.other,
      byKey: usage.byKey,
    };
  } finally {
    await stop();
  }
}

function trend(values) {
  const quarter = Math.max(1, Math.floor(values.length / 4));
  const mean = (list) => list.reduce((sum, value) => sum + value, 0) / list.length;
  const first = mean(values.slice(0, quarter));
  const last = mean(values.slice(-quarter));
  return { firstQuarterMeanMiB: first, lastQuarterMeanMiB: last, change: last / first - 1 };
}

async function workerRss({ redis, jobs, sampleEvery, gcEvery, warmup }) {
  const prefix = redis.prefix('mem-rss');
  const worker = await startWorkerProcess({
    side: 'ours',
    url: redis.url,
    prefix,
    concurrency: CONCURRENCY,
    port: 'noop',
    log: 'null',
    sampleEvery,
    gcEvery,
    nodeArgs: ['--expose-gc'],
  });
  const enqueuer = oursEnqueuer(redis.url, prefix);
  try {
    const samples = [];
    let processed = 0;
    worker.onMessage((message) => {
      if (message.event !== 'sample') return;
      samples.push({
        count: message.count,
        rss: message.rss,
        heapUsed: message.heapUsed,
        rssAfterGc: message.rssAfterGc,
        heapUsedAfterGc: message.heapUsedAfterGc,
      });
      processed = message.count;
    });
    const started = Date.now();
    let enqueued = 0;
    const chunk = Math.min(5_000, jobs);
    while (enqueued < jobs) {
      if (enqueued - processed >= 10_000) {
        await sleep(20);
        continue;
      }
      const n = Math.min(chunk, jobs - enqueued);
      await enqueuer.enqueue(n);
      enqueued += n;
    }
    await worker.request('expect', { n: jobs });
    const seconds = (Date.now() - started) / 1000;
    const measured = samples.filter((sample) => sample.count > warmup);
    const afterGc = measured.filter((sample) => sample.rssAfterGc !== undefined);
    const mib = (bytes) => bytes / 2 ** 20;
    const range = (values) => {
      const min = Math.min(...values);
      const max = Math.max(...values);
      return { min: mib(min), max: mib(max), first: mib(values[0]), last: mib(values.at(-1)), growth: max / min - 1 };
    };
    const rssMiB = range(measured.map((sample) => sample.rss));
    const rssAfterGcMiB = afterGc.length ? range(afterGc.map((sample) => sample.rssAfterGc)) : undefined;
    const result = {
      jobs,
      concurrency: CONCURRENCY,
      warmupJobs: warmup,
      sampleEvery,
      gcEvery,
      seconds,
      samples: samples.map((sample) => ({
        count: sample.count,
        rssMiB: mib(sample.rss),
        heapUsedMiB: mib(sample.heapUsed),
        ...(sample.rssAfterGc !== undefined && {
          rssAfterGcMiB: mib(sample.rssAfterGc),
          heapUsedAfterGcMiB: mib(sample.heapUsedAfterGc),
        }),
      })),
      // as sampled: the heap's sawtooth between full collections included
      rssMiB,
      heapUsedMiB: range(measured.map((sample) => sample.heapUsed)),
      // after a forced full GC every `gcEvery` jobs: what the process keeps
      rssAfterGcMiB,
      heapUsedAfterGcMiB: afterGc.length ? range(afterGc.map((sample) => sample.heapUsedAfterGc)) : undefined,
      growth: rssAfterGcMiB ? rssAfterGcMiB.growth : rssMiB.growth,
      // a leak would show as a trend: mean RSS over the last quarter of the samples against the first
      trend: trend(measured.map((sample) => mib(sample.rss))),
    };
    // Flat: no trend in RSS, and the heap the process keeps (after a full GC) does not grow.
    // The band RSS moves in between collections (the heap's sawtooth) is reported, not judged.
    result.flat =
      Math.abs(result.trend.change) <= 0.1 && (!result.heapUsedAfterGcMiB || result.heapUsedAfterGcMiB.growth <= 0.1);
    return result;
  } finally {
    await stopAll(worker, enqueuer);
  }
}

export async function memory({ quick }) {
  const tasks = quick ? 300 : 10_000;
  const rssJobs = quick ? 5_000 : 200_000;
  const sampleEvery = quick ? 250 : 2_000;
  // A forced full GC about as often as V8 runs one by itself here (every ~20,000 jobs).
  const gcEvery = quick ? 1_000 : 20_000;
  const warmup = rssJobs / 10;
  return withRedis(async (redis) => {
    const admin = redis.connect();
    const redisMemory = {
      completed: {
        ours: await redisPerTask({ redis, admin, side: 'ours', port: 'noop', tasks, label: 'ours-completed' }),
        raw: await redisPerTask({ redis, admin, side: 'raw', port: 'noop', tasks, label: 'raw-completed' }),
      },
      deadLetter: {
        ours: await redisPerTask({ redis, admin, side: 'ours', port: 'terminal', tasks, label: 'ours-dead' }),
        raw: await redisPerTask({ redis, admin, side: 'raw', port: 'terminal', tasks, label: 'raw-failed' }),
      },
    };
    log(
      `memory: completed job ${redisMemory.completed.ours.perTaskKeys.toFixed(0)} B (raw ${redisMemory.completed.raw.perTaskKeys.toFixed(0)} B), dead letter ${redisMemory.deadLetter.ours.perTaskKeys.toFixed(0)} B`,
    );
    const rss = await workerRss({ redis, jobs: rssJobs, sampleEvery, gcEvery, warmup });
    log(
      `memory: worker RSS ${rss.rssMiB.min.toFixed(1)}..${rss.rssMiB.max.toFixed(1)} MiB over ${rssJobs} jobs (${(rss.growth * 100).toFixed(1)} %); after a full GC ${rss.rssAfterGcMiB?.min.toFixed(1)}..${rss.rssAfterGcMiB?.max.toFixed(1)} MiB`,
    );
    return {
      redis: describeRedis(redis),
      tasks,
      redisMemory,
      workerRss: rss,
      goal: {
        metric: 'worker RSS trend (last quarter / first quarter - 1) and heap kept after a full GC, after warm-up',
        limit: 0.1,
        judged: !quick,
        met: quick ? null : rss.flat,
      },
    };
  });
}
