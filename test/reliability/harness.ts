/**
 * The reliability suite's harness: a fleet of real worker processes delivering to the
 * provider sandbox, a load of synthetic conversations, and the accounting every scenario
 * ends with.
 *
 * The invariant: every task the producer accepted was delivered exactly once (by
 * idempotency key, as the sandbox recorded it), or sits in the dead-letter queue with a
 * reason, or is still legitimately pending (scheduled in the future). Nothing else. And
 * no delivery arrived after its task's expiresAt (the expiry travels with each request).
 *
 * Sizes: each scenario has a reduced size (inside `npm test`) and a full size
 * (`npm run chaos`, CHAOS_SCALE=full), which also records its accounting line for
 * docs/RELIABILITY.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { sandboxEnvironment } from '../../dev/sandbox/sandbox-command.js';
import {
  createProducer,
  RedisUnavailableError,
  type EnqueuedTask,
  type Producer,
  type ProducerOptions,
} from '../../src/producer/producer.js';
import type { ConversationOutcome } from '../../src/contract/conversation-outcome.js';
import { typeKeys } from '../../src/redis/keys.js';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../dev/sandbox/sandbox.js';
import type { TaskType } from '../../src/tasks/catalog.js';
import { startChildWorker, type ChildWorker } from '../helpers/child-worker.js';
import type { Delivery, DeliveryProvider } from '../../dev/sandbox/delivery-log.js';
import { startSandboxProcess, type SandboxProcess } from './sandbox-process.js';
import { REDIS_ENV, testEnv } from '../helpers/redis.js';

export const FULL = process.env.CHAOS_SCALE === 'full';
export const scale = <T>(reduced: T, full: T): T => (FULL ? full : reduced);
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const TWILIO_SID = `AC${'c'.repeat(32)}`;

/** Worker environment: every channel pointed at the sandbox, quick recovery and retries. */
export function fleetEnv(
  prefix: string,
  sandbox: FleetSandbox,
  redisUrl: string | undefined = undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  return testEnv(prefix, `${sandbox.url}/webhooks`, {
    // The test backend (standalone or cluster), unless a test names its own Redis.
    ...(redisUrl === undefined ? REDIS_ENV : { REDIS_URL: redisUrl }),
    ...Object.fromEntries(sandboxEnvironment(sandbox)),
    RESEND_API_KEY: 're_reliability',
    EMAIL_FROM: 'Acme <bookings@acme.example>',
    TWILIO_ACCOUNT_SID: TWILIO_SID,
    TWILIO_AUTH_TOKEN: 'reliability',
    TWILIO_FROM: '+14155550000',
    WEBHOOK_TIMEOUT: '5s',
    RETRY_BASE_DELAY: '200ms',
    RETRY_MAX_DELAY: '2s',
    RETRY_JITTER: '200ms',
    LOCK_DURATION: '3s',
    STALLED_INTERVAL: '1s',
    SWEEP_INTERVAL: '1s',
    WORKER_CONCURRENCY: '20',
    ...extra,
  });
}

/** What the harness needs of a sandbox: in this process (`Sandbox`) or in its own (`SandboxProcess`). */
export type FleetSandbox = Pick<Sandbox, 'url' | 'resendBaseUrl' | 'twilioApiBase' | 'webhookUrl' | 'webhookSecret'> & {
  deliveries(filter?: { provider?: DeliveryProvider }): Delivery[] | Promise<Delivery[]>;
  close(): Promise<void>;
};

export interface Fleet<S extends FleetSandbox = Sandbox> {
  sandbox: S;
  prefix: string;
  env: Record<string, string>;
  workers: ChildWorker[];
  /** Starts one more worker process and waits until it serves. */
  addWorker(extra?: Record<string, string>): Promise<ChildWorker>;
  /** Stops everything still running (SIGTERM, then SIGKILL after 30 s). */
  stop(): Promise<void>;
}

interface FleetOptions {
  prefix: string;
  workers: number;
  redisUrl?: string;
  env?: Record<string, string>;
}

/**
 * Worker processes delivering to a sandbox in this process (`sandbox`: its options), or,
 * with `sandboxProcess` (the `aftercall sandbox` options), to one in a process of its own.
 */
export async function startFleet(options: FleetOptions & { sandbox?: SandboxOptions }): Promise<Fleet>;
export async function startFleet(options: FleetOptions & { sandboxProcess: string[] }): Promise<Fleet<SandboxProcess>>;
export async function startFleet(
  options: FleetOptions & { sandbox?: SandboxOptions; sandboxProcess?: string[] },
): Promise<Fleet<FleetSandbox>> {
  const sandbox: FleetSandbox = options.sandboxProcess
    ? await startSandboxProcess(['--seed', '1', ...options.sandboxProcess])
    : await startSandbox({ port: 0, seed: 1, ...options.sandbox });
  const env = fleetEnv(options.prefix, sandbox, options.redisUrl, options.env);
  const fleet: Fleet<FleetSandbox> = {
    sandbox,
    prefix: options.prefix,
    env,
    workers: [],
    async addWorker(extra = {}) {
      const worker = startChildWorker({ ...env, ...extra });
      fleet.workers.push(worker);
      await worker.waitForLog((line) => line.msg === 'worker started', 30_000);
      return worker;
    },
    async stop() {
      await Promise.all(
        fleet.workers.map(async (worker) => {
          if (worker.process.exitCode !== null || worker.process.signalCode !== null) return;
          worker.kill('SIGTERM');
          const timer = setTimeout(() => worker.kill('SIGKILL'), 30_000);
          await worker.exited;
          clearTimeout(timer);
        }),
      );
      await sandbox.close();
    },
  };
  for (let index = 0; index < options.workers; index += 1) await fleet.addWorker();
  return fleet;
}

export const running = (fleet: Fleet<FleetSandbox>) =>
  fleet.workers.filter((worker) => worker.process.exitCode === null && worker.process.signalCode === null);

/** A task the producer accepted. */
export interface AcceptedTask {
  type: TaskType;
  jobId: string;
  idempotencyKey: string;
  conversationId: string;
  runAt: number;
  expiresAt: number;
}

/** What the accounting keeps of a task the producer reported, under its `type/jobId`. */
export function recordAccepted(accepted: Map<string, AcceptedTask>, task: EnqueuedTask, conversationId: string): void {
  accepted.set(`${task.type}/${task.jobId}`, {
    type: task.type,
    jobId: task.jobId,
    idempotencyKey: task.idempotencyKey,
    conversationId,
    runAt: Date.parse(task.runAt),
    expiresAt: Date.parse(task.expiresAt),
  });
}

/**
 * Feeds outcomes to a producer, as a voice agent would: an outcome the producer could
 * not accept (Redis away) is tried again later; accepted tasks are recorded.
 */
export class Load {
  readonly accepted = new Map<string, AcceptedTask>();
  unavailable = 0;
  readonly producer: Producer;

  constructor(options: ProducerOptions) {
    this.producer = createProducer({ timeoutMs: 1_000, ...options });
  }

  async send(outcome: ConversationOutcome): Promise<boolean> {
    try {
      const result = await this.producer.conversationEnded(outcome);
      for (const task of result.tasks) recordAccepted(this.accepted, task, result.conversationId);
      return true;
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        this.unavailable += 1;
        return false;
      }
      throw error;
    }
  }

  /**
   * Sends outcomes at a steady pace; unaccepted ones are retried until accepted or
   * `deadline`. Given a function, each outcome is made when it is sent (its conversation
   * ends then, as a voice agent reports it).
   */
  async run(
    outcomes: ConversationOutcome[] | { count: number; make: (index: number) => ConversationOutcome },
    perSecond: number,
    deadline = Date.now() + 300_000,
  ): Promise<void> {
    const make = Array.isArray(outcomes) ? (index: number) => outcomes[index]! : outcomes.make;
    const pending = Array.from(
      { length: Array.isArray(outcomes) ? outcomes.length : outcomes.count },
      (_, index) => index,
    );
    const interval = 1_000 / perSecond;
    let next = Date.now();
    while (pending.length && Date.now() < deadline) {
      const item = pending.shift()!;
      const outcome = make(item);
      if (!(await this.send(outcome))) {
        pending.push(item);
        await sleep(200);
      }
      next += interval;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
    }
    if (pending.length) throw new Error(`${pending.length} outcomes were never accepted`);
  }

  close() {
    return this.producer.close();
  }
}

export interface Accounting {
  accepted: number;
  /** Tasks whose effect happened (a delivery recorded under their key). */
  delivered: number;
  /** Requests the sandbox recorded (webhooks: every receipt; Resend: sends, not idempotent replays; Twilio: messages). */
  rawReceipts: number;
  /** Tasks delivered more than once in effect, by provider: Resend sends, Twilio messages. Webhook receivers deduplicate by key. */
  duplicates: { resend: number; twilio: number };
  /** Webhook tasks whose receiver saw the request more than once (the effect, deduplicated by key, is once). */
  webhookRepeats: number;
  deadLettered: Record<string, number>;
  /** Delivered, and also dead-lettered (an answer was lost after the request arrived). */
  deliveredAndDeadLettered: number;
  pending: number;
  lost: number;
  stale: number;
  /** Deliveries under keys of no accepted task. */
  unexpected: number;
  lostKeys: string[];
  /** The first stale deliveries: key, provider and how late. */
  staleKeys: string[];
}

interface TaskState {
  finished: boolean;
  deadLetterReason: string | null;
  exists: boolean;
}

async function taskStates(client: Redis, prefix: string, tasks: AcceptedTask[]): Promise<Map<string, TaskState>> {
  const states = new Map<string, TaskState>();
  // One pipeline per type: a type's keys share one slot, which a cluster's pipeline needs.
  const byType = new Map<string, AcceptedTask[]>();
  for (const task of tasks) byType.set(task.type, [...(byType.get(task.type) ?? []), task]);
  for (const typeTasks of byType.values()) {
    for (let start = 0; start < typeTasks.length; start += 500) {
      const batch = typeTasks.slice(start, start + 500);
      const pipeline = client.pipeline();
      for (const task of batch) {
        const keys = typeKeys(prefix, task.type);
        pipeline.hmget(keys.job(task.jobId), 'finishedOn', 'deadLetterReason', 'data');
        pipeline.zscore(keys.failed, task.jobId);
      }
      const replies = (await pipeline.exec()) ?? [];
      batch.forEach((task, index) => {
        const [finishedOn, reason, data] = replies[index * 2]![1] as (string | null)[];
        const failed = replies[index * 2 + 1]![1] as string | null;
        states.set(`${task.type}/${task.jobId}`, {
          exists: data !== null,
          finished: finishedOn !== null,
          deadLetterReason: failed !== null ? (reason ?? 'exhausted') : null,
        });
      });
    }
  }
  return states;
}

export async function account(
  client: Redis,
  fleet: Pick<Fleet<FleetSandbox>, 'sandbox' | 'prefix'>,
  load: Pick<Load, 'accepted'>,
  now = Date.now(),
): Promise<Accounting> {
  const tasks = [...load.accepted.values()];
  const states = await taskStates(client, fleet.prefix, tasks);
  const byKey = new Map<string, { provider: string; receivedAt: number; expiresAt: number | null }[]>();
  const deliveries = await fleet.sandbox.deliveries();
  for (const delivery of deliveries) {
    const list = byKey.get(delivery.idempotencyKey ?? '') ?? [];
    list.push({
      provider: delivery.provider,
      receivedAt: Date.parse(delivery.receivedAt),
      expiresAt: delivery.expiresAt ? Date.parse(delivery.expiresAt) : null,
    });
    byKey.set(delivery.idempotencyKey ?? '', list);
  }
  const result: Accounting = {
    accepted: tasks.length,
    delivered: 0,
    rawReceipts: deliveries.length,
    duplicates: { resend: 0, twilio: 0 },
    webhookRepeats: 0,
    deadLettered: {},
    deliveredAndDeadLettered: 0,
    pending: 0,
    lost: 0,
    stale: 0,
    unexpected: 0,
    lostKeys: [],
    staleKeys: [],
  };
  const keys = new Set(tasks.map((task) => task.idempotencyKey));
  for (const key of byKey.keys()) if (!keys.has(key)) result.unexpected += byKey.get(key)!.length;
  for (const task of tasks) {
    const received = byKey.get(task.idempotencyKey) ?? [];
    const state = states.get(`${task.type}/${task.jobId}`)!;
    for (const delivery of received) {
      const late = delivery.receivedAt - (delivery.expiresAt ?? task.expiresAt);
      if (late <= 0) continue;
      result.stale += 1;
      if (result.staleKeys.length < 20)
        result.staleKeys.push(`${task.idempotencyKey} (${delivery.provider}, received ${late} ms after its expiry)`);
    }
    if (received.length) {
      result.delivered += 1;
      const count = (provider: string) => received.filter((delivery) => delivery.provider === provider).length;
      if (count('resend') > 1) result.duplicates.resend += 1;
      if (count('twilio') > 1) result.duplicates.twilio += 1;
      if (count('webhook') > 1) result.webhookRepeats += 1;
      if (state.deadLetterReason) result.deliveredAndDeadLettered += 1;
    } else if (state.deadLetterReason) {
      result.deadLettered[state.deadLetterReason] = (result.deadLettered[state.deadLetterReason] ?? 0) + 1;
    } else if (state.exists && !state.finished && task.runAt > now) {
      result.pending += 1;
    } else {
      result.lost += 1;
      if (result.lostKeys.length < 20)
        result.lostKeys.push(
          `${task.idempotencyKey} (${state.exists ? (state.finished ? 'finished without delivery' : 'stuck') : 'gone'})`,
        );
    }
  }
  return result;
}

/** Waits until every accepted task is delivered, dead-lettered or legitimately pending. */
export async function settle(
  client: Redis,
  fleet: Pick<Fleet<FleetSandbox>, 'sandbox' | 'prefix'>,
  load: Pick<Load, 'accepted'>,
  timeoutMs: number,
): Promise<Accounting> {
  const deadline = Date.now() + timeoutMs;
  let accounting = await account(client, fleet, load);
  while (accounting.lost > 0 && Date.now() < deadline) {
    await sleep(500);
    accounting = await account(client, fleet, load);
  }
  return accounting;
}

export function accountingLine(scenario: string, a: Accounting): string {
  const reasons =
    Object.entries(a.deadLettered)
      .map(([reason, count]) => `${reason} ${count}`)
      .join(', ') || 'none';
  return (
    `${scenario}: accepted ${a.accepted}, delivered ${a.delivered}, duplicate deliveries ${a.duplicates.resend + a.duplicates.twilio} ` +
    `(e-mail ${a.duplicates.resend}, SMS ${a.duplicates.twilio}; ${a.rawReceipts} raw receipts for ${a.delivered} unique keys, ${a.webhookRepeats} webhook requests seen twice), ` +
    `dead-lettered ${Object.values(a.deadLettered).reduce((x, y) => x + y, 0)} (${reasons}), pending ${a.pending}, lost ${a.lost}, stale ${a.stale}` +
    (a.deliveredAndDeadLettered ? `, delivered but dead-lettered ${a.deliveredAndDeadLettered}` : '')
  );
}

/** Prints the accounting line and, at full scale, records it for docs/RELIABILITY.md. */
export function report(
  scenario: string,
  accounting: Accounting | undefined,
  details: Record<string, unknown> = {},
  line?: string,
): void {
  const text = line ?? accountingLine(scenario, accounting!);
  console.log(text);
  if (!FULL) return;
  const dir = new URL('./.results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    new URL(`${scenario.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.json`, dir),
    JSON.stringify({ scenario, line: text, accounting, details, at: new Date().toISOString() }, null, 2),
  );
}

/** An SMS task Twilio got more than once. */
export interface SmsDuplicate {
  idempotencyKey: string;
  jobId: string;
  messages: number;
  /** Milliseconds between the first and the last message. */
  gapMs: number;
  /** "job completed" lines logged for the task's job, by all worker processes. */
  completions: number;
}

/**
 * The SMS tasks Twilio got more than once, each with how many times a worker ran the
 * job's handler to its end ("job completed" in the logs of all worker processes).
 *
 * One duplicate is beyond the ledger's reach: a job that ran twice at once. That happens
 * when a worker cannot renew its job's lock in time (Redis away, or the process starved
 * of CPU on a loaded machine): BullMQ's stalled-job check hands the job on (to another
 * process, or to another slot of the same one) while the first run is still sending. The
 * second run finds the `attempted:` mark but cannot tell an SMS in flight from one never
 * sent, and sends. Both runs then complete, so the job is logged completed twice. A
 * duplicate after a worker was killed, or after a timeout, is logged completed once: the
 * reconciliation should have found the first message.
 */
export async function smsDuplicates(
  fleet: Pick<Fleet<FleetSandbox>, 'sandbox' | 'workers'>,
  load: Pick<Load, 'accepted'>,
): Promise<SmsDuplicate[]> {
  const byKey = new Map<string, number[]>();
  for (const sms of await fleet.sandbox.deliveries({ provider: 'twilio' })) {
    const times = byKey.get(sms.idempotencyKey ?? '') ?? [];
    times.push(Date.parse(sms.receivedAt));
    byKey.set(sms.idempotencyKey ?? '', times);
  }
  const tasks = new Map([...load.accepted.values()].map((task) => [task.idempotencyKey, task]));
  const duplicates: SmsDuplicate[] = [];
  for (const [idempotencyKey, times] of byKey) {
    if (times.length < 2) continue;
    const task = tasks.get(idempotencyKey);
    const jobId = task?.jobId ?? '';
    const completions = fleet.workers
      .flatMap((worker) => worker.logs)
      .filter((line) => line.msg === 'job completed' && line.jobId === jobId && line.type === task?.type).length;
    duplicates.push({
      idempotencyKey,
      jobId,
      messages: times.length,
      gapMs: Math.max(...times) - Math.min(...times),
      completions,
    });
  }
  return duplicates;
}

/** Duplicates the ledger could have prevented: the job did not run twice at once (one completion). */
export const avoidableSmsDuplicates = (duplicates: SmsDuplicate[]) =>
  duplicates.filter((duplicate) => duplicate.completions < 2);

/** The invariant every scenario asserts. */
export function invariantViolations(a: Accounting, options: { allowSmsDuplicates?: number } = {}): string[] {
  const violations: string[] = [];
  if (a.lost) violations.push(`${a.lost} lost: ${a.lostKeys.join(', ')}`);
  if (a.stale) violations.push(`${a.stale} stale deliveries: ${a.staleKeys.join(', ')}`);
  if (a.duplicates.resend) violations.push(`${a.duplicates.resend} e-mails sent twice`);
  if (a.duplicates.twilio > (options.allowSmsDuplicates ?? 0)) violations.push(`${a.duplicates.twilio} SMS sent twice`);
  if (a.unexpected) violations.push(`${a.unexpected} deliveries of unknown tasks`);
  return violations;
}
