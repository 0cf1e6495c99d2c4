/**
 * The destination policy: how the fleet protects a destination, and how a job waits
 * for one, using its time (its expiry), never its attempts.
 *
 * Before each delivery the job asks `acquire` (a Redis round trip; the destination's keys
 * are shared by every worker process). A process keeps one call in flight per destination
 * (with no limit or limits of at least 100 per period) while it is not saturated: the jobs that start meanwhile are asked for
 * together in the next call, and Redis answers each in turn as it would a call of its own (a
 * backlog's deliveries with a limit far above their rate: 1.02 top-level calls per task
 * became 0.08, docs/PERFORMANCE.md "Redis cost"); saturated (`question` below), each job
 * asks on its own. The answers:
 *   - closed, under its rate limits: go;
 *   - closed, at a limit: a slot is reserved for the job at the next free time, and the
 *     job waits until then (BullMQ delays it: no attempt is used, and jobs of the same
 *     queue bound for other destinations go on);
 *   - open: the job waits for the next probe; when the cooldown ends, exactly one caller
 *     fleet-wide gets the probe (half_open); its success closes the circuit, its failure
 *     re-opens it with the cooldown doubled (up to maxCooldownMs);
 *   - held (a 429 until its Retry-After; a 410 Gone, or an operator, until `circuit close`):
 *     the job waits.
 * A wait that would end after the job's deadline (its expiresAt less the delivery
 * timeout) ends the job as `expired` at once, with a message naming the limit or since
 * when the destination has been unavailable.
 *
 * After each delivery the job reports its result: calls and retryable failures (5xx,
 * timeouts, network errors; terminal 4xx answers count as calls that worked, 429s not at
 * all). Successes are sent in batches, at most once per `flushMs` (1 s) per destination, off
 * the job's path; a failure and a probe's result are sent at once, with the successes
 * still pending, so the circuit opens as soon as its threshold is crossed and judges it
 * on every call made before the failure. Successes wait only for what they are for, the
 * failure ratio: a flush every 100 ms cost a backlog's deliveries 0.015 Redis calls per
 * task, enough to put the policy's cost above 1.5 times raw BullMQ's commands per task
 * (1.507, docs/PERFORMANCE.md "Redis cost per task"). `circuit list` shows a ratio up to a
 * second old. A 429 holds the destination fleet-wide for its
 * Retry-After (or the retry base delay); a 410 holds it until an operator closes it.
 * Limits a provider states in its headers (`ratelimit-limit`) are adopted beside the
 * configured one; the lower governs.
 *
 * With `trustClosedMs` (the worker: 100 ms), a
 * destination that has no rate limit and that this process saw closed less than that long
 * ago is not asked again: the round trip before every delivery was the largest cost
 * aftercall added to an I/O-bound job (docs/PERFORMANCE.md). A change made elsewhere (a
 * circuit another process opened, a 429 hold, an operator's `circuit open`) reaches the
 * process within that time, and at once through its own reports: a failure, a 429, a 410
 * and any answer from Redis that is not "closed" end the trust. A destination with a rate
 * limit asks every time (each grant is counted in Redis). A job that goes in the trust's
 * last quarter renews it in the background, by one read of the state that changes nothing
 * (about 1.33 reads per 100 ms per busy process instead of one question): a job starting
 * when the trust would have ended no longer waits for the round trip, nor do the jobs
 * behind it. The trust never rests on a read older than `trustClosedMs`.
 */
import { formatDuration, toIso, type Clock } from '../contract/time.js';
import type { AcquireJob, AcquireReply, DestinationState, DestinationStore } from '../redis/destination-store.js';
import { formatRateLimit, type RateLimit } from './rate-limit.js';

export interface CircuitSettings {
  /** The window over which calls and failures are counted. */
  windowMs: number;
  /** Calls within the window before the circuit may open. */
  minCalls: number;
  /** Share of retryable failures among those calls that opens it. */
  failureRatio: number;
  /** First wait before the probe; doubles after each failed probe. */
  cooldownMs: number;
  maxCooldownMs: number;
}

export const DEFAULT_CIRCUIT: CircuitSettings = {
  windowMs: 30_000,
  minCalls: 10,
  failureRatio: 0.5,
  cooldownMs: 15_000,
  maxCooldownMs: 5 * 60_000,
};

export type WaitReason = 'rate_limit' | 'circuit';

export type Gate =
  | { go: true; probe: boolean }
  | { go: false; expire: false; waitMs: number; reason: WaitReason; message: string }
  | { go: false; expire: true; reason: WaitReason; message: string };

export type DeliveryResult = 'success' | 'failure' | 'neutral';

export interface DestinationPolicyOptions {
  store: DestinationStore;
  /** Configured limits by destination (`RESEND_RATE_LIMIT`...); absent: no limit of ours. */
  limits?: Readonly<Record<string, RateLimit | undefined>>;
  circuit?: Partial<CircuitSettings>;
  /** How long a 429 without Retry-After holds the destination (RETRY_BASE_DELAY). */
  defaultHoldMs: number;
  /** Timeout of one delivery: the probe's lease is this plus 5 s. */
  deliveryTimeoutMs: number;
  /** How often a job waiting on a hold with no end looks again; default the cooldown. */
  pollMs?: number;
  /** How long successes may wait before they are sent; default 1 s (failures go at once). */
  flushMs?: number;
  /**
   * How long a destination without rate limits, seen closed, goes without asking Redis
   * again before a delivery; default 0 (ask every time).
   */
  trustClosedMs?: number;
  clock?: Clock;
  random?: () => number;
  onTransition?: (destination: string, to: DestinationState) => void;
  onError?: (error: Error) => void;
}

/** A job's question, waiting for the destination's next call (the policy's `question`). */
interface Waiting {
  job: AcquireJob;
  resolve: (answer: Answer) => void;
  reject: (error: unknown) => void;
}

/** Redis' answer to one job, with the call's `now` and margin, and whether a limit applied. */
interface Answer {
  reply: AcquireReply;
  now: number;
  marginMs: number;
  limited: boolean;
}

/** The lowest limit (per period) of a destination whose questions are asked together. */
const BATCH_MIN_LIMIT = 100;

/** Grants a delivery may give back for being acted on too late, before it uses the next. */
const MAX_LATE_GRANTS = 2;

export interface DestinationPolicy {
  readonly circuit: CircuitSettings;
  limitOf(destination: string): RateLimit | undefined;
  /** A limit the provider stated (headers), adopted beside the configured one. */
  learn(destination: string, stated: RateLimit | undefined): void;
  acquire(destination: string, jobId: string, deadline: number): Promise<Gate>;
  /**
   * Records a delivery's result. A failure or a probe's result is sent at once and resolves
   * with the destination's state after it (a successes' batch resolves with undefined).
   */
  report(destination: string, result: DeliveryResult, probe: boolean): Promise<DestinationState | undefined>;
  /** A 429: holds the destination fleet-wide; resolves with the end of the hold. */
  hold(destination: string, retryAfterMs: number | undefined, reason: string): Promise<number>;
  gone(destination: string, reason: string): Promise<void>;
  /** Sends the results still pending. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createDestinationPolicy(options: DestinationPolicyOptions): DestinationPolicy {
  const { store } = options;
  const circuit = { ...DEFAULT_CIRCUIT, ...options.circuit };
  const clock = options.clock ?? Date.now;
  const random = options.random ?? Math.random;
  const flushMs = options.flushMs ?? 1_000;
  const pollMs = options.pollMs ?? circuit.cooldownMs;
  const trustClosedMs = options.trustClosedMs ?? 0;
  const learned = new Map<string, RateLimit>();
  // Destinations seen closed (no rate limit), until when that is trusted without asking.
  const closedUntil = new Map<string, number>();
  // The question in flight for such a destination: whether it answered "closed, go". The
  // jobs that start meanwhile share it rather than each asking (a closed destination
  // without limits answers every job alike); any other answer, they ask themselves.
  const asking = new Map<string, Promise<boolean>>();
  // Each destination's trust ends (distrust) when anything but "closed" is seen: counted, so
  // that an answer sent before the end cannot set the trust again after it.
  const distrusted = new Map<string, number>();
  const distrust = (destination: string) => {
    closedUntil.delete(destination);
    distrusted.set(destination, (distrusted.get(destination) ?? 0) + 1);
  };
  // Trust in its last quarter is renewed in the background, by one read of the state that
  // changes nothing: busy jobs keep going without waiting for a round trip when it ends.
  const renewing = new Set<string>();
  const renew = (destination: string) => {
    if (renewing.has(destination)) return;
    renewing.add(destination);
    const sentAt = clock();
    const generation = distrusted.get(destination) ?? 0;
    store
      .closedUnlimited(destination, sentAt)
      .then(
        (closed) => {
          if ((distrusted.get(destination) ?? 0) !== generation) return;
          if (closed && !limitsOf(destination).length) closedUntil.set(destination, sentAt + trustClosedMs);
          else distrust(destination);
        },
        (error: unknown) => options.onError?.(error as Error),
      )
      .finally(() => renewing.delete(destination));
  };
  // Questions go one call at a time per destination and process: the jobs that ask while a
  // call is in flight are asked for together in the next (acquireMany), each answered as by
  // a call of its own. A busy process asks once per round trip rather than once per job; an
  // idle one asks at once, as before. The shared options (`now`, limits, margin) are taken
  // when the call is sent: a grant's time is when it was asked for, not when its job queued.
  //
  // Only for a destination whose every limit is at least BATCH_MIN_LIMIT per period (the
  // limiter grants a tenth of it per tenth of the period, so a call's jobs mostly go), and not
  // while it is saturated: once a call answers a job "wait for the rate limit", each job is
  // asked for on its own for a period of the longest limit. Near a limit a call's answers are
  // mostly waits, and taking them in together could hold the granted job's request behind
  // them past the margin its grant allows (chaos 8 at full scale, 3/s on 3 processes and 2
  // cores: 21 and 23 windows over the limit in 300 s asked together, 10 and 16 one by one;
  // a 3/s limit is now always asked one by one).
  const waiting = new Map<string, Waiting[]>();
  const calling = new Set<string>();
  const saturatedUntil = new Map<string, number>();
  const question = (destination: string, job: AcquireJob) =>
    new Promise<Answer>((resolve, reject) => {
      const entry = { job, resolve, reject };
      const batchable = limitsOf(destination).every(([limit]) => limit >= BATCH_MIN_LIMIT);
      if (!batchable || (saturatedUntil.get(destination) ?? 0) > clock()) {
        void sendQuestions(destination, [entry]);
        return;
      }
      const queued = waiting.get(destination);
      if (queued) queued.push(entry);
      else waiting.set(destination, [entry]);
      if (!calling.has(destination)) void sendQuestions(destination);
    });
  const sendQuestions = async (destination: string, alone?: Waiting[]) => {
    const asked = alone ?? waiting.get(destination);
    if (!asked) return;
    if (!alone) {
      waiting.delete(destination);
      calling.add(destination);
    }
    const now = clock();
    const limits = limitsOf(destination);
    const longest = Math.max(0, ...limits.map(([, periodMs]) => periodMs));
    const marginMs = Math.max(30, Math.round(longest * 0.03));
    const stated = learned.get(destination);
    try {
      const replies = await store.acquireMany(
        destination,
        {
          now,
          limits,
          marginMs,
          probeLeaseMs: options.deliveryTimeoutMs + 5_000,
          pollMs,
          ...(stated && { stated: [stated.limit, stated.periodMs] as [number, number] }),
        },
        asked.map((entry) => entry.job),
      );
      if (replies.some((reply) => reply.code === 2 || reply.code === 4)) saturatedUntil.set(destination, now + longest);
      for (const [index, entry] of asked.entries()) {
        entry.resolve({ reply: replies[index]!, now, marginMs, limited: limits.length > 0 });
      }
    } catch (error) {
      for (const entry of asked) entry.reject(error);
    } finally {
      if (!alone) {
        calling.delete(destination);
        if (waiting.has(destination)) void sendQuestions(destination);
      }
    }
  };
  const pending = new Map<string, { calls: number; failures: number }>();
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();

  const transitioned = (destination: string, transition: string, state?: string) => {
    if (transition || (state !== undefined && state !== 'closed')) distrust(destination);
    if (transition) options.onTransition?.(destination, transition as DestinationState);
  };
  const limitsOf = (destination: string): [number, number][] =>
    [options.limits?.[destination], learned.get(destination)]
      .filter((rate): rate is RateLimit => rate !== undefined)
      .map((rate) => [rate.limit, rate.periodMs]);

  const describe = (destination: string, reply: AcquireReply): string => {
    const since = reply.since ? ` since ${toIso(reply.since)}` : '';
    if (reply.state === 'held') {
      const until = reply.until ? ` until ${toIso(reply.until)}` : ' until an operator closes it';
      return `destination ${destination} held${since}${until}${reply.reason ? ` (${reply.reason})` : ''}`;
    }
    const probe = reply.state === 'open' && reply.until ? `; next probe at ${toIso(reply.until)}` : '';
    return `destination ${destination} unavailable${since} (circuit ${reply.state}${reply.reason ? `: ${reply.reason}` : ''}${probe})`;
  };

  const send = async (
    destination: string,
    calls: number,
    failures: number,
    probe?: 'success' | 'failure',
  ): Promise<DestinationState> => {
    const reply = await store.record(destination, {
      now: clock(),
      calls,
      failures,
      ...(probe && { probe }),
      windowMs: circuit.windowMs,
      minCalls: circuit.minCalls,
      ratio: circuit.failureRatio,
      cooldownMs: circuit.cooldownMs,
      maxCooldownMs: circuit.maxCooldownMs,
    });
    transitioned(destination, reply.transition, reply.state);
    return reply.state;
  };

  const flush = async () => {
    timer = undefined;
    const batch = [...pending];
    pending.clear();
    const sending = Promise.all(
      batch.map(([destination, counts]) =>
        send(destination, counts.calls, counts.failures).catch((error) => options.onError?.(error as Error)),
      ),
    ).then(() => undefined);
    inFlight = inFlight.then(() => sending);
    await sending;
  };

  const policy: DestinationPolicy = {
    circuit,
    limitOf(destination) {
      const configured = options.limits?.[destination];
      const stated = learned.get(destination);
      if (!configured) return stated;
      if (!stated) return configured;
      return stated.limit / stated.periodMs < configured.limit / configured.periodMs ? stated : configured;
    },
    learn(destination, stated) {
      if (!stated) return;
      const known = learned.get(destination);
      if (!known || known.limit !== stated.limit || known.periodMs !== stated.periodMs) {
        learned.set(destination, { limit: stated.limit, periodMs: stated.periodMs });
        distrust(destination);
      }
    },
    acquire(destination, jobId, deadline) {
      return ask(destination, jobId, deadline, undefined, 0);
    },
    async report(destination, result, probe) {
      if (result === 'failure') distrust(destination);
      if (result === 'failure' && !probe) {
        // Failures go at once (with whatever is pending): the circuit must open as soon as
        // the threshold is crossed, not a batch later. Successes wait for the batch.
        const counts = pending.get(destination) ?? { calls: 0, failures: 0 };
        pending.delete(destination);
        return send(destination, counts.calls + 1, counts.failures + 1).catch((error) => {
          options.onError?.(error as Error);
          return undefined;
        });
      }
      if (probe) {
        return send(
          destination,
          result === 'neutral' ? 0 : 1,
          result === 'failure' ? 1 : 0,
          result === 'failure' ? 'failure' : 'success',
        );
      }
      const counts = pending.get(destination) ?? { calls: 0, failures: 0 };
      counts.calls += 1;
      if (result === 'failure') counts.failures += 1;
      pending.set(destination, counts);
      timer ??= setTimeout(() => void flush(), flushMs);
      timer.unref?.();
      return undefined;
    },
    async hold(destination, retryAfterMs, reason) {
      const now = clock();
      const until = now + (retryAfterMs ?? options.defaultHoldMs);
      distrust(destination);
      const reply = await store.set(destination, { action: 'hold', now, until, reason });
      transitioned(destination, reply.transition);
      return until;
    },
    async gone(destination, reason) {
      distrust(destination);
      const reply = await store.set(destination, { action: 'gone', now: clock(), until: 0, reason });
      transitioned(destination, reply.transition);
    },
    flush: async () => {
      if (timer) clearTimeout(timer);
      await flush();
      await inFlight;
    },
    async close() {
      await this.flush();
    },
  };
  return policy;

  /** `acquire`, giving back the grant of `release` (its `now`) after `late` grants acted on too late. */
  async function ask(
    destination: string,
    jobId: string,
    deadline: number,
    release: number | undefined,
    late: number,
  ): Promise<Gate> {
    const trusted = closedUntil.get(destination);
    if (trusted !== undefined) {
      const at = clock();
      if (at < trusted) {
        if (at >= trusted - trustClosedMs / 4) renew(destination);
        return { go: true, probe: false };
      }
    }
    const shared = asking.get(destination);
    if (shared && (await shared)) return { go: true, probe: false };
    const generation = distrusted.get(destination) ?? 0;
    const limits = limitsOf(destination);
    const asked = question(destination, { job: jobId, deadline, ...(release !== undefined && { release }) });
    // Closed and unlimited: go without asking, for a moment. A limit another process
    // learned from the destination (reply.stated) makes it limited for this one too.
    const unlimitedGo = (reply: AcquireReply) => reply.code === 0 && reply.state === 'closed' && !reply.stated;
    if (trustClosedMs > 0 && !limits.length && !asking.has(destination)) {
      const closed = asked.then(
        ({ reply }) => unlimitedGo(reply),
        () => false,
      );
      asking.set(destination, closed);
      void closed.then(() => {
        if (asking.get(destination) === closed) asking.delete(destination);
      });
    }
    const { reply, now, marginMs, limited } = await asked;
    void store.register(destination).catch((error) => options.onError?.(error as Error));
    transitioned(destination, reply.transition, reply.state);
    // The fleet's stated limit, learned by another process: adopted here too.
    if (reply.stated && !learned.has(destination)) policy.learn(destination, reply.stated);
    if (unlimitedGo(reply) && !limited && trustClosedMs > 0 && (distrusted.get(destination) ?? 0) === generation) {
      closedUntil.set(destination, now + trustClosedMs);
    }
    // A rate-limit grant acted on too late is not used. The reply waited for this process
    // (its event loop busy, its CPU shared): sent now, the request could reach the
    // destination more than the margin after its grant, in one window with requests
    // granted a window later (measured: 4 in one second of a 3/s limit, beside a CPU-bound
    // load). The grant is given back in the next question, at most twice per delivery.
    if (reply.code === 0 && (limited || reply.stated) && late < MAX_LATE_GRANTS && clock() - now > marginMs) {
      return ask(destination, jobId, deadline, now, late + 1);
    }
    switch (reply.code) {
      case 0:
      case 1:
        return { go: true, probe: reply.code === 1 };
      case 2: {
        const rate = policy.limitOf(destination);
        return {
          go: false,
          expire: false,
          waitMs: reply.ms,
          reason: 'rate_limit',
          message: `rate limit of ${destination}${rate ? ` (${formatRateLimit(rate)})` : ''}: waiting ${formatDuration(reply.ms)} for a free slot`,
        };
      }
      case 3:
        // Spread the waiters, so they do not all come back in the same millisecond.
        return {
          go: false,
          expire: false,
          waitMs: reply.ms + Math.floor(random() * Math.min(1_000, reply.ms * 0.1 + 50)),
          reason: 'circuit',
          message: describe(destination, reply),
        };
      case 4: {
        const rate = policy.limitOf(destination);
        return {
          go: false,
          expire: true,
          reason: 'rate_limit',
          message: `rate limit of ${destination}${rate ? ` (${formatRateLimit(rate)})` : ''}: the next free slot (in ${formatDuration(reply.ms)}) is too late to end before expiresAt`,
        };
      }
      default:
        return { go: false, expire: true, reason: 'circuit', message: describe(destination, reply) };
    }
  }
}
