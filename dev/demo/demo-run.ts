/**
 * The demo's run: carries out a DemoPlan against a real Redis. `startFleet` checks that
 * Redis answers, starts the provider sandbox and the worker processes; the fleet then
 * enqueues the plan's outcomes, ends the fault burst after its time, reports progress
 * until every task is settled (completed or dead-lettered), the deadline passes or no
 * worker is left, and reads back each task's final state. `stop` ends the workers, the
 * producer and the sandbox and removes the run's keys unless the plan keeps them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { AftercallConfig } from '../../src/config/environment.js';
import { packageRoot } from '../../src/config/package-root.js';
import { conversationStatus, type TaskStatus } from '../../src/ops/status.js';
import { createProducer, type EnqueuedTask, type Producer } from '../../src/producer/producer.js';
import { createRedisConnection, describeRedisTarget, describeRedisUrl } from '../../src/redis/connection.js';
import { DEAD_LETTER_REASONS } from '../../src/redis/dead-letter-queue.js';
import { createDestinationStore, type DestinationStore } from '../../src/redis/destination-store.js';
import { readFleetState } from '../../src/redis/fleet-state.js';
import { typeKeys } from '../../src/redis/keys.js';
import type { RedisClient } from '../../src/redis/scripts.js';
import { type TaskType, taskTypes } from '../../src/tasks/catalog.js';
import { type Sandbox, startSandbox } from '../sandbox/sandbox.js';
import { AFTER_BURST, type DemoPlan, workerEnvironment } from './demo-plan.js';

const BIN = join(packageRoot(), 'bin', 'aftercall.js');

/** An enqueued task and its conversation. */
export type DemoTask = EnqueuedTask & { conversationId: string };

/** One destination as the progress shows it: its circuit (from Redis) and its rate (from the provider's side). */
export interface DestinationView {
  destination: string;
  /** closed, open, half_open or held. */
  state: string;
  /** Requests the sandbox received in the last whole second. */
  perSecond: number;
}

/** How many tasks have settled so far, in all and per type; with `destinations`, each destination's rate and state. */
export interface Settled {
  total: number;
  byType: Record<TaskType, { completed: number; deadLettered: number }>;
  destinations?: DestinationView[];
}

export interface Fleet {
  sandbox: Sandbox;
  /** Enqueues every outcome of the plan, one conversation after the other; the fault burst starts its clock. */
  enqueue(): Promise<DemoTask[]>;
  /** Polls until `created` tasks are settled, the deadline passes or no worker runs; calls `onProgress` each time. */
  waitUntilSettled(created: number, onProgress: (settled: Settled) => void): Promise<Settled>;
  /** The final state of every task of the plan's conversations, by `type/jobId`. */
  statuses(): Promise<Map<string, TaskStatus>>;
  /** What the workers wrote to stderr (the last part of it). */
  workerErrors(): string;
  stop(): Promise<void>;
}

/** Redis at the configured target, once it answers a PING within 2 s; otherwise an error that says how to start one. */
async function connect(config: AftercallConfig): Promise<RedisClient> {
  const client = createRedisConnection('worker', { redis: config.redis, name: 'aftercall-demo' });
  const reachable = await Promise.race([
    client.ping().then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2_000).unref()),
  ]);
  if (reachable) return client;
  client.disconnect();
  const where =
    config.redis.mode === 'standalone'
      ? `at ${describeRedisUrl(config.redis.url)}`
      : `(${describeRedisTarget(config.redis)})`;
  throw new Error(
    `no Redis answers ${where}; start one with \`redis-server\` (or \`docker compose up -d redis\`), or set REDIS_URL.`,
  );
}

function startWorkers(count: number, env: Record<string, string>): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, [BIN, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] }),
  );
}

async function stopWorkers(workers: ChildProcess[]): Promise<void> {
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.exitCode !== null) return resolve();
          const timer = setTimeout(() => worker.kill('SIGKILL'), 30_000);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          worker.kill('SIGTERM');
        }),
    ),
  );
}

async function removeKeys(client: RedisClient, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await (client as import('ioredis').Redis).scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Each destination the fleet has used: its circuit's state, and the requests the sandbox saw in the last whole second. */
async function destinationViews(store: DestinationStore, sandbox: Sandbox): Promise<DestinationView[]> {
  const now = Date.now();
  const lastSecond = new Date(Math.floor(now / 1_000) * 1_000 - 1_000).toISOString();
  const traffic = sandbox.traffic({ from: Date.parse(lastSecond) }).destinations;
  const names = await store.list(Object.keys(traffic));
  return Promise.all(
    names.map(async (destination) => ({
      destination,
      state: (await store.read(destination, now, 30_000)).state,
      perSecond: traffic[destination]?.seconds.find((second) => second.start === lastSecond)?.requests ?? 0,
    })),
  );
}

async function settled(client: RedisClient, prefix: string): Promise<Settled> {
  const [state, completed] = await Promise.all([
    readFleetState(client, prefix),
    Promise.all(taskTypes.map((type) => client.zcard(typeKeys(prefix, type).completed))),
  ]);
  const byType = {} as Settled['byType'];
  let total = 0;
  taskTypes.forEach((type, index) => {
    const deadLettered = DEAD_LETTER_REASONS.reduce((sum, reason) => sum + state.deadLetters[type][reason], 0);
    byType[type] = { completed: completed[index]!, deadLettered };
    total += completed[index]! + deadLettered;
  });
  return { total, byType };
}

/**
 * Checks Redis, then starts the sandbox and the workers. Throws when Redis does not answer
 * (nothing started) or the sandbox cannot start (the workers are not started either).
 */
export async function startFleet(plan: DemoPlan, config: AftercallConfig): Promise<Fleet> {
  const client = await connect(config);
  let producer: Producer | undefined;
  let sandbox: Sandbox | undefined;
  let workers: ChildProcess[] = [];
  let burst: NodeJS.Timeout | undefined;
  const errors: string[] = [];

  const stop = async () => {
    clearTimeout(burst);
    await stopWorkers(workers);
    await producer?.close();
    await sandbox?.close();
    if (!plan.keep) await removeKeys(client, plan.prefix).catch(() => undefined);
    client.disconnect();
  };

  try {
    producer = createProducer({ redis: config.redis, prefix: plan.prefix, tasks: plan.tasks });
    sandbox = await startSandbox({ port: 0, seed: 42, faults: plan.faults });
    workers = startWorkers(plan.workers, workerEnvironment(plan, config, sandbox));
  } catch (error) {
    await stop();
    throw error;
  }
  for (const worker of workers) worker.stderr!.on('data', (chunk: Buffer) => errors.push(chunk.toString('utf8')));
  const running = { producer, sandbox };
  // The provider scenarios show each destination's rate and circuit while the fleet works.
  const store = plan.scenario === 'burst' ? undefined : createDestinationStore(client, plan.prefix);
  const progressOf = async (): Promise<Settled> => {
    const now = await settled(client, plan.prefix);
    return store ? { ...now, destinations: await destinationViews(store, running.sandbox) } : now;
  };

  return {
    sandbox,
    async enqueue() {
      if (plan.startFaults) {
        // Every worker serving first, so the faults meet the fleet at work rather than its start-up.
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const state = await readFleetState(client, plan.prefix);
          if (taskTypes.every((type) => state.workers[type] >= plan.workers)) break;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        running.sandbox.setFaults(plan.startFaults);
      }
      const tasks: DemoTask[] = [];
      for (const outcome of plan.outcomes) {
        const result = await running.producer.conversationEnded(outcome);
        tasks.push(...result.tasks.map((task) => ({ ...task, conversationId: result.conversationId })));
      }
      burst = setTimeout(() => running.sandbox.setFaults(AFTER_BURST), plan.burstSeconds * 1_000);
      return tasks;
    },
    async waitUntilSettled(created, onProgress) {
      const deadline = Date.now() + plan.timeoutSeconds * 1_000;
      let now = await progressOf();
      while (now.total < created && Date.now() < deadline && workers.some((worker) => worker.exitCode === null)) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        now = await progressOf();
        onProgress(now);
      }
      return now;
    },
    async statuses() {
      const byJob = new Map<string, TaskStatus>();
      for (const outcome of plan.outcomes) {
        for (const entry of await conversationStatus(client, plan.prefix, outcome.conversationId))
          byJob.set(`${entry.type}/${entry.jobId}`, entry);
      }
      return byJob;
    },
    workerErrors: () => errors.join('').slice(-2_000),
    stop,
  };
}
