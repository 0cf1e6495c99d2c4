/**
 * The fleet-wide state of each delivery destination (`resend`, `twilio`,
 * `webhook:<type>`), in Redis, shared by every worker process: its circuit (closed, open,
 * half_open, held), its rate-limit grants, and per-second counts of calls and failures.
 *
 * A destination's keys share one hash tag, `{dest:<name>}`, of their own: its state needs
 * no atomicity with any job, so it lives apart from the types' slots and spreads over a
 * cluster's shards like the types do. Every key a script touches is passed in KEYS.
 *
 *   <prefix>:{dest:<name>}:state    hash: state, since, until, reason, cooldown, probeUntil, manual,
 *                                   stated, statedAt (the limit the destination stated, for the fleet)
 *   <prefix>:{dest:<name>}:grants   zset: sends granted, by the time they were granted (the rate limit)
 *   <prefix>:{dest:<name>}:queue    zset: each waiting job's expected turn
 *   <prefix>:{dest:<name>}:stats    hash: c:<second> calls, f:<second> failures (the circuit's window)
 *   <prefix>:{destinations}         set: every destination the fleet has used (for `circuit list`)
 */
import { readFileSync } from 'node:fs';
import type { RedisClient } from './scripts.js';

export const DESTINATION_STATES = ['closed', 'open', 'half_open', 'held'] as const;
export type DestinationState = (typeof DESTINATION_STATES)[number];

/** Low-cardinality, label-safe names: never a URL or a secret. */
export const DESTINATION_NAME = /^[a-z][a-z0-9_]*(:[a-z0-9_]+)?$/;

export function destinationKeys(prefix: string, destination: string): [string, string, string, string] {
  const base = `${prefix}:{dest:${destination}}:`;
  return [`${base}state`, `${base}grants`, `${base}stats`, `${base}queue`];
}

export const destinationsKey = (prefix: string) => `${prefix}:{destinations}`;

export interface DestinationStatus {
  destination: string;
  state: DestinationState;
  /** Epoch ms of the last change of state (0: never changed). */
  since: number;
  /** Open: the next probe; held: the end of the hold; 0: no end (or not applicable). */
  until: number;
  reason: string;
  /** Set by an operator (`circuit open`) or a 410 Gone: ends only with `circuit close`. */
  manual: boolean;
  /** Calls and retryable failures within the circuit's window. */
  calls: number;
  failures: number;
  /** The limit the destination stated (ratelimit-* headers) to a worker in the last 10 minutes. */
  stated: { limit: number; periodMs: number } | undefined;
}

/** A stated limit lapses when no worker has restated it for this long (the acquire script's STATED_TTL_MS). */
export const STATED_LIMIT_TTL_MS = 600_000;

function parseStated(text: string | undefined): { limit: number; periodMs: number } | undefined {
  const match = text ? /^(\d+)\/(\d+)$/.exec(text) : null;
  return match ? { limit: Number(match[1]), periodMs: Number(match[2]) } : undefined;
}

export type AcquireCode = 0 | 1 | 2 | 3 | 4 | 5;

export interface AcquireReply {
  code: AcquireCode;
  ms: number;
  state: DestinationState;
  since: number;
  until: number;
  reason: string;
  transition: DestinationState | '';
  /** The limit the destination stated, as kept for the fleet (this process's or another's). */
  stated: { limit: number; periodMs: number } | undefined;
}

export interface AcquireOptions {
  now: number;
  job: string;
  limits: [limit: number, periodMs: number][];
  marginMs: number;
  deadline: number;
  probeLeaseMs: number;
  pollMs: number;
  /** The limit the destination stated to this process, to keep for the fleet. */
  stated?: [limit: number, periodMs: number];
  /** The `now` of this job's earlier grant, given back unused (acted on too late). */
  release?: number;
}

/** One job of a batched question (acquireMany): its own part of AcquireOptions. */
export interface AcquireJob {
  job: string;
  deadline: number;
  release?: number;
}

/** What the jobs of one batched question share: every option but the job's own. */
export type AcquireShared = Omit<AcquireOptions, keyof AcquireJob>;

export interface RecordOptions {
  now: number;
  calls: number;
  failures: number;
  probe?: 'success' | 'failure';
  windowMs: number;
  minCalls: number;
  ratio: number;
  cooldownMs: number;
  maxCooldownMs: number;
}

export interface SetOptions {
  action: 'hold' | 'gone' | 'open' | 'close';
  now: number;
  until: number;
  reason: string;
}

const SCRIPTS = {
  aftercall_destinationAcquire: 'destination-acquire-4.lua',
  aftercall_destinationRecord: 'destination-record-4.lua',
  aftercall_destinationSet: 'destination-set-4.lua',
} as const;
type Command = keyof typeof SCRIPTS;

const defined = new WeakSet<object>();
let sources: Map<Command, string> | undefined;

function call<T>(client: RedisClient, command: Command, keys: string[], options: object): Promise<T> {
  if (!defined.has(client)) {
    sources ??= new Map(
      (Object.entries(SCRIPTS) as [Command, string][]).map(([name, file]) => [
        name,
        readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8'),
      ]),
    );
    for (const [name, lua] of sources) client.defineCommand(name, { numberOfKeys: 4, lua });
    defined.add(client);
  }
  const fn = (client as unknown as Record<Command, (...args: string[]) => Promise<T>>)[command];
  return fn.call(client, ...keys, JSON.stringify(options));
}

export interface DestinationStore {
  /**
   * The question for one job or several in one call: Redis answers each in turn, in order, exactly
   * as separate calls at the same `now` would be answered (a grant counts for the next).
   */
  acquireMany(destination: string, shared: AcquireShared, jobs: readonly AcquireJob[]): Promise<AcquireReply[]>;
  record(destination: string, options: RecordOptions): Promise<{ state: DestinationState; transition: string }>;
  set(destination: string, options: SetOptions): Promise<{ state: DestinationState; transition: string }>;
  /** Remembers the destination for `circuit list` (once per process and destination). */
  register(destination: string): Promise<void>;
  /** Every destination used so far, with the given ones, sorted. */
  list(extra?: readonly string[]): Promise<string[]>;
  read(destination: string, now: number, windowMs: number): Promise<DestinationStatus>;
  /**
   * Whether the destination is closed with no limit stated by it in force: one read of its
   * state hash, changing nothing (a worker renewing its trust in a closed destination).
   */
  closedUnlimited(destination: string, now: number): Promise<boolean>;
}

export function createDestinationStore(client: RedisClient, prefix: string): DestinationStore {
  const registered = new Set<string>();
  return {
    async acquireMany(destination, shared, jobs) {
      const replies = await call<[number, number, string, string, string, string, string, string][]>(
        client,
        'aftercall_destinationAcquire',
        destinationKeys(prefix, destination),
        { ...shared, jobs },
      );
      return replies.map(([code, ms, state, since, until, reason, transition, stated]) => ({
        code: code as AcquireCode,
        ms,
        state: state as DestinationState,
        since: Number(since),
        until: Number(until),
        reason,
        transition: transition as DestinationState | '',
        stated: parseStated(stated),
      }));
    },
    async record(destination, options) {
      const [state, transition] = await call<[string, string]>(
        client,
        'aftercall_destinationRecord',
        destinationKeys(prefix, destination),
        options,
      );
      return { state: state as DestinationState, transition };
    },
    async set(destination, options) {
      const [state, transition] = await call<[string, string]>(
        client,
        'aftercall_destinationSet',
        destinationKeys(prefix, destination),
        options,
      );
      await this.register(destination);
      return { state: state as DestinationState, transition };
    },
    async register(destination) {
      if (registered.has(destination)) return;
      await client.sadd(destinationsKey(prefix), destination);
      registered.add(destination);
    },
    async list(extra = []) {
      const known = await client.smembers(destinationsKey(prefix));
      return [...new Set([...known, ...extra])].sort();
    },
    async closedUnlimited(destination, now) {
      const [state, stated, statedAt] = await client.hmget(
        destinationKeys(prefix, destination)[0],
        'state',
        'stated',
        'statedAt',
      );
      const limited =
        stated !== null && parseStated(stated) !== undefined && now - Number(statedAt ?? 0) <= STATED_LIMIT_TTL_MS;
      return (state ?? 'closed') === 'closed' && !limited;
    },
    async read(destination, now, windowMs) {
      const [stateKey, , statsKey] = destinationKeys(prefix, destination);
      const [hash, stats] = await Promise.all([client.hgetall(stateKey), client.hgetall(statsKey)]);
      const oldest = Math.floor((now - windowMs) / 1000);
      let calls = 0;
      let failures = 0;
      for (const [field, value] of Object.entries(stats)) {
        if (Number(field.slice(2)) <= oldest) continue;
        if (field.startsWith('c:')) calls += Number(value);
        else failures += Number(value);
      }
      let state = (hash.state as DestinationState | undefined) ?? 'closed';
      const until = Number(hash.until ?? 0);
      // A timed hold that has run out reads as closed (the next acquire records it).
      if (state === 'held' && until > 0 && now >= until) state = 'closed';
      return {
        destination,
        state,
        since: Number(hash.since ?? 0),
        until: state === 'closed' ? 0 : until,
        reason: state === 'closed' ? '' : (hash.reason ?? ''),
        manual: hash.manual === '1',
        calls,
        failures,
        stated: now - Number(hash.statedAt ?? 0) <= STATED_LIMIT_TTL_MS ? parseStated(hash.stated) : undefined,
      };
    },
  };
}
