/**
 * Traffic per destination, as the provider saw it: how many requests arrived, how they were
 * answered (2xx, 429, other 4xx, 5xx), per one-second window, and the most that arrived in
 * any window. It is the provider's side of "the fleet never sends more than the limit":
 * a test or the demo reads it (`GET /_sandbox/stats`) instead of trusting the fleet's own
 * account.
 *
 * A request is counted at its arrival time (the sandbox's clock) with the status the sandbox
 * decided for it, also when the answer is held (a hang) or the client left before it.
 *
 *   maxPerSecond  the most requests (and 2xx answers) in one aligned second [k s, (k+1) s)
 *   sliding       the most requests (and 2xx answers) in any interval of `windowMs`, wherever
 *                 it starts: the destination's limit window by default, so `maxRequests <=
 *                 limit` proves the limit was never exceeded from the provider's side
 *
 * Twilio's message list (GET) is a read, not a send: it is not counted.
 *
 * Every arrival time is kept until a reset, so the sliding maximum is exact for any
 * window length asked: about 50 bytes and 2 µs per request (measured: 53 MB and 84 ms
 * for a report over a million requests), plenty for test, demo and chaos runs.
 */
import type { RateLimitConfig } from './faults.js';

export interface TrafficCounts {
  requests: number;
  /** 2xx answers. */
  ok: number;
  /** 429 answers, whatever the cause (the limit, or `rateLimitRate`). */
  rateLimited: number;
  /** Other 4xx answers (authentication, validation, terminal recipients, idempotency conflicts). */
  clientErrors: number;
  /** 5xx answers, whatever the cause (an outage, or `serverErrorRate`). */
  serverErrors: number;
}

export interface SecondCounts extends TrafficCounts {
  /** ISO-8601 start of the second. */
  start: string;
}

export interface DestinationTraffic extends TrafficCounts {
  /** 429s answered because the destination's limit was reached. */
  overLimit: number;
  /** 503s answered because the destination was in an outage. */
  duringOutage: number;
  /** ISO-8601 arrival of the first and the last request, or null. */
  firstAt: string | null;
  lastAt: string | null;
  /** The limit in force now, if any. */
  limit: RateLimitConfig | null;
  maxPerSecond: { requests: number; ok: number };
  sliding: {
    windowMs: number;
    maxRequests: number;
    maxOk: number;
    /** ISO-8601 arrival of the first request of a window holding `maxRequests`, or null. */
    maxRequestsFrom: string | null;
  };
  /** Every second with at least one request, oldest first. */
  seconds: SecondCounts[];
}

export interface TrafficReport {
  /** When counting started: the sandbox's start or its last reset (ISO-8601). */
  since: string;
  /** The sandbox's clock at the report (ISO-8601). */
  now: string;
  destinations: Record<string, DestinationTraffic>;
}

export type AnswerCause = 'limit' | 'outage';

export interface TrafficQuery {
  destination?: string;
  /** Length of the sliding window; default the destination's limit window, or 1000 ms. */
  windowMs?: number;
  /** Only list seconds starting at or after this time (epoch ms); the totals and maxima cover everything. */
  from?: number;
}

const SECOND_MS = 1_000;
const zeroCounts = (): TrafficCounts => ({ requests: 0, ok: 0, rateLimited: 0, clientErrors: 0, serverErrors: 0 });

function add(counts: TrafficCounts, status: number): void {
  counts.requests += 1;
  if (status >= 200 && status < 300) counts.ok += 1;
  else if (status === 429) counts.rateLimited += 1;
  else if (status >= 500) counts.serverErrors += 1;
  else if (status >= 400) counts.clientErrors += 1;
}

/** Arrival times, kept sorted (arrivals are nearly always in order; an injected clock may step back). */
class Arrivals {
  private times: number[] = [];
  private sorted = true;

  push(at: number): void {
    const last = this.times[this.times.length - 1];
    if (last !== undefined && at < last) this.sorted = false;
    this.times.push(at);
  }

  /** The most arrivals in any half-open interval of `windowMs`, and where the first such interval starts. */
  maxIn(windowMs: number): { max: number; from: number | null } {
    if (!this.sorted) {
      this.times.sort((a, b) => a - b);
      this.sorted = true;
    }
    const times = this.times;
    let max = 0;
    let from: number | null = null;
    let first = 0;
    for (let last = 0; last < times.length; last += 1) {
      while (times[last]! - times[first]! >= windowMs) first += 1;
      if (last - first + 1 > max) {
        max = last - first + 1;
        from = times[first]!;
      }
    }
    return { max, from };
  }
}

class DestinationRecord {
  readonly counts = zeroCounts();
  overLimit = 0;
  duringOutage = 0;
  firstAt: number | null = null;
  lastAt: number | null = null;
  readonly seconds = new Map<number, TrafficCounts>();
  readonly all = new Arrivals();
  readonly ok = new Arrivals();

  record(at: number, status: number, cause: AnswerCause | undefined): void {
    add(this.counts, status);
    if (cause === 'limit') this.overLimit += 1;
    if (cause === 'outage') this.duringOutage += 1;
    this.firstAt = this.firstAt === null ? at : Math.min(this.firstAt, at);
    this.lastAt = this.lastAt === null ? at : Math.max(this.lastAt, at);
    const second = Math.floor(at / SECOND_MS) * SECOND_MS;
    let counts = this.seconds.get(second);
    if (!counts) {
      counts = zeroCounts();
      this.seconds.set(second, counts);
    }
    add(counts, status);
    this.all.push(at);
    if (status >= 200 && status < 300) this.ok.push(at);
  }

  report(limit: RateLimitConfig | undefined, query: TrafficQuery): DestinationTraffic {
    const windowMs = query.windowMs ?? limit?.windowMs ?? SECOND_MS;
    const requests = this.all.maxIn(windowMs);
    const seconds = [...this.seconds.entries()].sort(([a], [b]) => a - b);
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      ...this.counts,
      overLimit: this.overLimit,
      duringOutage: this.duringOutage,
      firstAt: iso(this.firstAt),
      lastAt: iso(this.lastAt),
      limit: limit ? { ...limit } : null,
      maxPerSecond: {
        requests: seconds.reduce((max, [, counts]) => Math.max(max, counts.requests), 0),
        ok: seconds.reduce((max, [, counts]) => Math.max(max, counts.ok), 0),
      },
      sliding: {
        windowMs,
        maxRequests: requests.max,
        maxOk: this.ok.maxIn(windowMs).max,
        maxRequestsFrom: iso(requests.from),
      },
      seconds: seconds
        .filter(([start]) => query.from === undefined || start >= query.from)
        .map(([start, counts]) => ({ start: new Date(start).toISOString(), ...counts })),
    };
  }
}

export class TrafficLog {
  private destinations = new Map<string, DestinationRecord>();
  private since: number;

  constructor(private readonly now: () => number) {
    this.since = now();
  }

  record(destination: string, at: number, status: number, cause?: AnswerCause): void {
    let record = this.destinations.get(destination);
    if (!record) {
      record = new DestinationRecord();
      this.destinations.set(destination, record);
    }
    record.record(at, status, cause);
  }

  /**
   * The report for every destination that received a request or has a limit (`limitOf`),
   * or for `query.destination` alone (zeros when it saw nothing).
   */
  report(
    limitOf: (destination: string) => RateLimitConfig | undefined,
    configured: string[],
    query: TrafficQuery = {},
  ) {
    const names = query.destination
      ? [query.destination]
      : [...new Set([...this.destinations.keys(), ...configured])].sort();
    const destinations: Record<string, DestinationTraffic> = {};
    for (const name of names) {
      destinations[name] = (this.destinations.get(name) ?? new DestinationRecord()).report(limitOf(name), query);
    }
    const report: TrafficReport = {
      since: new Date(this.since).toISOString(),
      now: new Date(this.now()).toISOString(),
      destinations,
    };
    return report;
  }

  reset(): void {
    this.destinations.clear();
    this.since = this.now();
  }
}
