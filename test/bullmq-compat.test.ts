/**
 * Contract tests for every BullMQ internal aftercall relies on (src/redis/bullmq-compat.ts),
 * run against the installed BullMQ and real Redis. A BullMQ upgrade that changes one of
 * them fails here, naming it, instead of corrupting jobs quietly.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  type IRedisTransaction,
  Job,
  type Processor,
  Queue,
  QueueEvents,
  type QueueOptions,
  Worker,
  type WorkerOptions,
} from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BULLMQ_ADD_SCRIPTS,
  BULLMQ_DEFAULT_MAX_LEN_EVENTS,
  BULLMQ_DUPLICATE_CHECK,
  BULLMQ_FIELDS,
  BULLMQ_JOB_KEY_SUFFIXES,
  BULLMQ_KEY_SUFFIXES,
  BULLMQ_VERSION,
  bullmqAddCommand,
  bullmqScript,
  embeddedAdd,
  isBullmqWorkerName,
  listClientNames,
  movedOutOfActive,
  readJobHash,
} from '../src/redis/bullmq-compat.js';
import { queueName, typeKeys } from '../src/redis/keys.js';
import { deadLetterActive, purgeDeadLetter, replayDeadLetter } from '../src/redis/scripts.js';
import { redis, removePrefix, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const require = createRequire(import.meta.url);
const prefix = uniquePrefix('bullmq-compat');
const client = redis();
// Each test has a queue of its own, so one test's worker never takes another's jobs.
const TYPE = 'update_crm';
const keys = typeKeys(prefix, TYPE);
const closers: (() => Promise<unknown>)[] = [];

function queue(type = TYPE, options: Partial<QueueOptions> = {}): Queue {
  const made = new Queue(queueName(type), { connection: redis(), prefix, ...options });
  made.on('error', () => undefined);
  closers.push(async () => {
    await made.close();
  });
  return made;
}

function worker(type: string, processor: Processor | null, options: Partial<WorkerOptions> = {}): Worker {
  const made = new Worker(queueName(type), processor, { connection: redis(), prefix, ...options });
  made.on('error', () => undefined);
  closers.push(async () => {
    await made.close();
  });
  return made;
}

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('BullMQ internals (bullmq-compat.ts) against the installed BullMQ', () => {
  it('is the version bullmq-compat was checked against, pinned exactly', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pkg.dependencies.bullmq, 'package.json pins bullmq exactly').toBe(BULLMQ_VERSION);
    expect((require('bullmq/package.json') as { version: string }).version).toBe(BULLMQ_VERSION);
  });

  it('ships the add scripts by name, with the key counts their headers and file names state', () => {
    for (const name of BULLMQ_ADD_SCRIPTS) {
      const script = bullmqScript(name);
      expect(script.name).toBe(name);
      const header = script.content.slice(0, script.content.indexOf(']]'));
      const declared = Math.max(...[...header.matchAll(/KEYS\[(\d+)\]/g)].map((match) => Number(match[1])));
      expect(declared, `${name}'s header`).toBe(script.keys);
      expect(() => require.resolve(`bullmq/dist/cjs/commands/${name}-${script.keys}.lua`)).not.toThrow();
    }
    expect(bullmqScript('addStandardJob').keys).toBe(9);
    expect(bullmqScript('addDelayedJob').keys).toBe(6);
    expect(() => bullmqScript('noSuchScript')).toThrow(/has no script noSuchScript/);
  });

  it('embeds each add script with its duplicate check, and only that, turned off', () => {
    for (const name of BULLMQ_ADD_SCRIPTS) {
      const original = bullmqScript(name).content;
      const embedded = embeddedAdd(name);
      expect(original.split(BULLMQ_DUPLICATE_CHECK), `${name} checks duplicates once`).toHaveLength(2);
      expect(embedded.content).not.toContain(BULLMQ_DUPLICATE_CHECK);
      const [before, after] = original.split(BULLMQ_DUPLICATE_CHECK) as [string, string];
      expect(embedded.content.startsWith(before)).toBe(true);
      expect(embedded.content.endsWith(after)).toBe(true);
      expect(embedded.keys).toBe(bullmqScript(name).keys);
    }
  });

  it("counts every add in the queue's job counter (`id`), a duplicate's too: what the enqueue counts tasks created with", async () => {
    const q = queue('compat_counter');
    const counter = typeKeys(prefix, 'compat_counter').id;
    expect(counter).toBe(q.keys.id);
    await q.add('x', {}, { jobId: 'one' });
    await q.add('x', {}, { jobId: 'two', delay: 60_000 });
    expect(Number(await client.get(counter))).toBe(2);
    // BullMQ counts an add of an existing id too: aftercall's enqueue never sends one (it checks EXISTS first).
    await q.add('x', {}, { jobId: 'one' });
    expect(Number(await client.get(counter))).toBe(3);
  });

  it("hands a recorder exactly one runCommand per add, naming the script '<name>:<version>', and sends nothing", async () => {
    const q = queue();
    const calls: { command: string; args: unknown[] }[] = [];
    const recorder = {
      runCommand(command: string, args: unknown[]) {
        calls.push({ command, args });
        return 1;
      },
    } as unknown as IRedisTransaction;
    const job = new Job(q, TYPE, { n: 1 }, { jobId: 'recorded' }, 'recorded');
    await q.getBackend().addJobToTransaction(recorder, job.asJSON(), 'recorded', {}, q.keys);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.command).toMatch(/^addStandardJob:/);
    expect(calls[0]!.args).toHaveLength(bullmqScript('addStandardJob').keys + 3);
    expect(await client.exists(keys.job('recorded'))).toBe(0);

    const standard = bullmqAddCommand(q, TYPE, { n: 1 }, { jobId: 's' }, 's');
    expect(standard.script).toBe('addStandardJob');
    expect(standard.keys).toHaveLength(9);
    expect(standard.keys).toContain(keys.wait);
    expect(standard.keys).toContain(keys.marker);
    expect(standard.args).toHaveLength(3);
    const delayed = bullmqAddCommand(q, TYPE, { n: 1 }, { jobId: 'd', delay: 60_000 }, 'd');
    expect(delayed.script).toBe('addDelayedJob');
    expect(delayed.keys).toHaveLength(6);
    expect(delayed.keys).toContain(keys.delayed);
    expect(() => bullmqAddCommand(q, TYPE, {}, { jobId: 'p', priority: 3 }, 'p')).toThrow(/does not wrap/);
  });

  it('writes, by the recorded command, the very job hash Queue.add writes', async () => {
    const q = queue();
    const opts = { timestamp: 1_764_000_000_000, attempts: 3, removeOnFail: false };
    const data = { conversationId: 'c-1', nested: { list: [1, 2] } };
    const add = bullmqAddCommand(q, TYPE, data, { ...opts, jobId: 'via-recorder' }, 'via-recorder');
    const lua = bullmqScript(add.script).content;
    await client.eval(lua, add.keys.length, ...add.keys, ...add.args);
    await q.add(TYPE, data, { ...opts, jobId: 'via-queue' });
    const viaRecorder = await client.hgetall(keys.job('via-recorder'));
    const viaQueue = await client.hgetall(keys.job('via-queue'));
    // The same but for the job id inside the stored options.
    const withoutId = (hash: Record<string, string>) => ({
      ...hash,
      opts: JSON.stringify({ ...JSON.parse(hash.opts!), jobId: undefined }),
    });
    expect(JSON.parse(viaRecorder.opts!).jobId).toBe('via-recorder');
    expect(Object.keys(viaRecorder).length).toBeGreaterThan(3);
    expect(withoutId(viaRecorder)).toEqual(withoutId(viaQueue));
    expect(await client.lrange(keys.wait, 0, -1)).toEqual(expect.arrayContaining(['via-recorder', 'via-queue']));
  });

  it('names its queue keys as keys.ts does', () => {
    const q = queue();
    for (const suffix of BULLMQ_KEY_SUFFIXES) expect(keys[suffix], suffix).toBe(q.keys[suffix]);
    expect(keys.job('abc')).toBe(q.toKey('abc'));
    expect(keys.base).toBe(q.keys['']);
  });

  it('keeps a job in a hash with the fields bullmq-compat names, and reads back what aftercall writes there', async () => {
    const keys = typeKeys(prefix, 'fields');
    const q = queue('fields');
    await q.add(
      TYPE,
      { conversationId: 'c-2' },
      { jobId: 'fields', attempts: 3, backoff: { type: 'fixed', delay: 10 } },
    );
    let runs = 0;
    worker(
      'fields',
      async () => {
        runs += 1;
        if (runs === 1) throw new Error('first attempt fails');
        return { ok: true };
      },
      { name: 'compat-worker' },
    );
    await waitUntil(
      () => client.hget(keys.job('fields'), BULLMQ_FIELDS.finishedOn),
      (value) => value !== null,
      'the job to finish',
    );
    const hash = await client.hgetall(keys.job('fields'));
    const job = (await q.getJob('fields'))!;
    // Both attempts, the failed one and the one that completed.
    expect(hash[BULLMQ_FIELDS.attemptsMade]).toBe('2');
    expect(job.attemptsMade).toBe(2);
    expect(hash[BULLMQ_FIELDS.attemptsStarted]).toBe('2');
    expect(hash[BULLMQ_FIELDS.processedBy]).toBe('compat-worker');
    expect(hash[BULLMQ_FIELDS.returnvalue]).toBe(JSON.stringify({ ok: true }));
    expect(Number(hash[BULLMQ_FIELDS.processedOn])).toBe(job.processedOn);
    expect(Number(hash[BULLMQ_FIELDS.finishedOn])).toBe(job.finishedOn);
    expect(Number(hash[BULLMQ_FIELDS.timestamp])).toBe(job.timestamp);
    expect(JSON.parse(hash[BULLMQ_FIELDS.data]!)).toEqual({ conversationId: 'c-2' });
    expect(readJobHash(hash)).toMatchObject({ attemptsMade: 2, finishedOn: job.finishedOn, timestamp: job.timestamp });

    // What aftercall's Lua writes (dead-letter, replay), BullMQ reads under the same names.
    await client.hset(keys.job('fields'), {
      [BULLMQ_FIELDS.attemptsMade]: 4,
      [BULLMQ_FIELDS.attemptsStarted]: 5,
      [BULLMQ_FIELDS.stalledCounter]: 2,
      [BULLMQ_FIELDS.deferredFailure]: 'later',
      [BULLMQ_FIELDS.processedBy]: 'someone',
      [BULLMQ_FIELDS.failedReason]: 'expired: because',
      [BULLMQ_FIELDS.delay]: 7,
    });
    const reread = (await q.getJob('fields'))!;
    expect(reread.attemptsMade).toBe(4);
    expect(reread.attemptsStarted).toBe(5);
    expect(reread.stalledCounter).toBe(2);
    expect(reread.deferredFailure).toBe('later');
    expect(reread.processedBy).toBe('someone');
    expect(reread.failedReason).toBe('expired: because');
    expect(reread.delay).toBe(7);
  });

  it("marks a waiting job with the marker member, records pause and the events limit in meta, and locks at '<job>:lock'", async () => {
    const keys = typeKeys(prefix, 'marker');
    const q = queue('marker', { streams: { events: { maxLen: 77 } } });
    await q.waitUntilReady();
    await waitUntil(
      () => client.hget(keys.meta, BULLMQ_FIELDS.maxLenEvents),
      (value) => value === '77',
      'the events limit in meta',
    );
    await client.del(keys.marker);
    await q.add(TYPE, {}, { jobId: 'marked' });
    expect(await client.zrange(keys.marker, '0', '-1', 'WITHSCORES')).toEqual([BULLMQ_FIELDS.markerMember, '0']);

    await q.pause();
    expect(await client.hexists(keys.meta, BULLMQ_FIELDS.paused)).toBe(1);
    await q.resume();
    expect(await client.hexists(keys.meta, BULLMQ_FIELDS.paused)).toBe(0);

    const w = worker('marker', null, { autorun: false });
    const job = (await w.getNextJob('lock-token'))!;
    expect(await client.get(`${keys.job(job.id!)}${BULLMQ_JOB_KEY_SUFFIXES.lock}`)).toBe('lock-token');
    expect(keys.lock(job.id!)).toBe(`${keys.job(job.id!)}${BULLMQ_JOB_KEY_SUFFIXES.lock}`);
    await job.log('a line');
    expect(await client.llen(`${keys.job(job.id!)}${BULLMQ_JOB_KEY_SUFFIXES.logs}`)).toBe(1);
    await job.moveToCompleted('done', 'lock-token', false);
  });

  it('names Worker connections as isBullmqWorkerName expects, named or not', async () => {
    const q = queue('names');
    worker('names', async () => undefined);
    worker('names', async () => undefined, { name: 'named-one' });
    await waitUntil(
      () => q.getWorkersCount(),
      (count) => count === 2,
      'two workers',
    );
    const names = await listClientNames(client);
    const ours = names.filter((name) => isBullmqWorkerName(name, prefix, queueName('names')));
    expect(ours).toHaveLength(2);
    expect(ours.some((name) => name.endsWith(':w:named-one'))).toBe(true);
    expect(names.filter((name) => isBullmqWorkerName(name, prefix, queueName('send_email')))).toHaveLength(0);
    expect(names.filter((name) => isBullmqWorkerName(name, `${prefix}x`, queueName('names')))).toHaveLength(0);
  });

  it('leaves a job alone when its processor moved it out of active and threw movedOutOfActive', async () => {
    const keys = typeKeys(prefix, 'moved');
    const q = queue('moved');
    const events: string[] = [];
    let moved = -99;
    const w = worker('moved', async (job, token) => {
      moved = await deadLetterActive(client, keys, {
        jobId: job.id!,
        token: token!,
        reason: 'terminal',
        message: 'terminal: moved by the processor',
        attempts: 7,
        now: Date.now(),
      });
      throw movedOutOfActive('dead-lettered: terminal');
    });
    w.on('failed', () => events.push('failed'));
    w.on('completed', () => events.push('completed'));
    w.on('error', (error) => events.push(`error: ${error.message}`));
    await q.add(TYPE, { conversationId: 'c-3' }, { jobId: 'moved', attempts: 3 });
    await waitUntil(
      () => client.zscore(keys.failed, 'moved'),
      (score) => score !== null,
      'the dead-letter entry',
    );
    // Let the worker finish its turn with the job, then look.
    await waitUntil(
      () => client.llen(keys.active),
      (length) => length === 0,
      'active to empty',
    );
    await w.close();
    expect(moved).toBe(0);
    expect(events).toEqual([]);
    const job = (await q.getJob('moved'))!;
    expect(job.attemptsMade).toBe(7);
    expect(job.failedReason).toBe('terminal: moved by the processor');
    expect(await client.hget(keys.job('moved'), BULLMQ_FIELDS.attemptsMade)).toBe('7');
    expect(await client.zrange(keys.failed, '0', '-1')).toEqual(['moved']);
    expect(await client.llen(keys.wait)).toBe(0);
    expect(await client.zcard(keys.delayed)).toBe(0);
    expect(await q.getJobState('moved')).toBe('failed');
  });

  it("writes dead-letter, replay and purge events in BullMQ's stream format, as QueueEvents reads them", async () => {
    const keys = typeKeys(prefix, 'events');
    const q = queue('events');
    const listener = new QueueEvents(queueName('events'), { connection: redis(), prefix, lastEventId: '0-0' });
    closers.push(() => listener.close());
    const seen: string[] = [];
    listener.on('failed', ({ jobId, failedReason, prev }) => seen.push(`failed ${jobId} ${prev}: ${failedReason}`));
    listener.on('waiting', ({ jobId, prev }) => seen.push(`waiting ${jobId} ${prev ?? ''}`.trim()));
    listener.on('removed', ({ jobId, prev }) => seen.push(`removed ${jobId} ${prev}`));
    const w = worker('events', null, { autorun: false });
    const deadLetterNext = async (jobId: string) => {
      await q.add('events', {}, { jobId });
      expect((await w.getNextJob(`token-${jobId}`))!.id).toBe(jobId);
      const options = { reason: 'terminal', message: 'terminal: refused', attempts: 1, now: Date.now() };
      expect(await deadLetterActive(client, keys, { jobId, token: `token-${jobId}`, ...options })).toBe(0);
    };
    await deadLetterNext('purged');
    expect(await purgeDeadLetter(client, keys, 'purged')).toBe(1);
    await deadLetterNext('replayed');
    expect(await replayDeadLetter(client, keys, { jobId: 'replayed', expiresAt: Date.now() + 60_000 }, '')).toBe(1);
    await waitUntil(
      () => seen,
      (lines) => lines.includes('waiting replayed failed'),
      'the replay event',
    );
    expect(seen).toEqual([
      'waiting purged',
      'failed purged active: terminal: refused',
      'removed purged failed',
      'waiting replayed',
      'failed replayed active: terminal: refused',
      'waiting replayed failed',
    ]);
  });

  it('is named in Lua exactly as in bullmq-compat.ts (lua/includes/bullmq.lua)', () => {
    const lua = readFileSync(new URL('../src/redis/lua/includes/bullmq.lua', import.meta.url), 'utf8');
    const table = lua.slice(lua.indexOf('local BULLMQ = {'));
    const entries = Object.fromEntries(
      [...table.matchAll(/^\s+(\w+) = (?:"([^"]*)"|(\d+)),/gm)].map((match) => [match[1], match[2] ?? match[3]]),
    );
    expect(entries).toEqual({
      ...BULLMQ_FIELDS,
      defaultMaxLenEvents: String(BULLMQ_DEFAULT_MAX_LEN_EVENTS),
      lockSuffix: BULLMQ_JOB_KEY_SUFFIXES.lock,
      logsSuffix: BULLMQ_JOB_KEY_SUFFIXES.logs,
    });
  });
});
