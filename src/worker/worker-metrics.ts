/**
 * Metrics, for Prometheus (prom-client). Every worker process serves them on /metrics.
 *
 * Two kinds of series, and they aggregate differently across pods:
 *
 * - Per-process series count what one process did (its attempts, completions, retries,
 *   dead letters, provider requests, sweeps, and its Node.js process metrics). Across
 *   pods they add up: aggregate with `sum`.
 *
 * - Fleet-wide series describe shared state in Redis, read at scrape time: tasks created
 *   (a counter the producers keep in Redis, so the creation rate never depends on
 *   scraping the voice-agent servers), queue depth by state, dead-letter depth by reason,
 *   and the number of BullMQ workers per queue. Every pod exports the same values:
 *   aggregate with `max`, never `sum` (N pods would multiply them). They are read with one
 *   pipelined round trip per type, all sent at once, plus one CLIENT LIST, whatever the
 *   queue sizes (counters and list lengths only), and cached for a few seconds so that
 *   frequent scrapes do not add load.
 *
 * A voice-agent server exposes its producer's metrics from `producerRegistry`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SweepResult } from './expiry-sweeper.js';
import type { JobOutcomeEvent } from './job-handler.js';
import { DEAD_LETTER_REASONS } from '../redis/dead-letter-queue.js';
import { QUEUE_STATES, readFleetState, type FleetState } from '../redis/fleet-state.js';
import { SETTLED_RESULTS } from '../redis/conversation-settlement.js';
import type { RedisClient } from '../redis/scripts.js';
import { taskTypes, type TaskType } from '../tasks/catalog.js';
import { DESTINATION_STATES, type DestinationState, type DestinationStatus } from '../redis/destination-store.js';

const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export interface WorkerMetrics {
  registry: Registry;
  onJobOutcome(event: JobOutcomeEvent): void;
  onSweep(result: SweepResult): void;
  observeProvider(provider: string, status: string, seconds: number): void;
  /** Marks the task types this process serves. */
  serving(types: readonly TaskType[]): void;
  /** A destination's circuit moved to `to` (counted by the process whose call moved it). */
  onTransition(destination: string, to: DestinationState): void;
  /** The destinations whose state is exported, and how to read one (at scrape time, cached). */
  watchDestinations(destinations: readonly string[], read: (destination: string) => Promise<DestinationStatus>): void;
}

export interface WorkerMetricsOptions {
  client: RedisClient;
  prefix: string;
  /** Types the fleet-wide series cover: those switched on (a type switched off would read as unserved forever). */
  types?: readonly TaskType[];
  /** How long fleet-wide values read from Redis are reused; default 5 s. */
  cacheMs?: number;
  clock?: () => number;
}

export function createWorkerMetrics(options: WorkerMetricsOptions): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const clock = options.clock ?? Date.now;
  const cacheMs = options.cacheMs ?? 5_000;
  const registers = [registry];
  const fleetTypes = options.types ?? taskTypes;

  const attempts = new Counter({
    name: 'aftercall_task_attempts_total',
    help: 'Provider calls, by task type and result (success, retryable_error, terminal_error, rate_limited).',
    labelNames: ['type', 'result'],
    registers,
  });
  const completed = new Counter({
    name: 'aftercall_tasks_completed_total',
    help: 'Tasks delivered, by type (this process).',
    labelNames: ['type'],
    registers,
  });
  const retries = new Counter({
    name: 'aftercall_task_retries_total',
    help: 'Retries scheduled, by type (this process).',
    labelNames: ['type'],
    registers,
  });
  const deadLettered = new Counter({
    name: 'aftercall_tasks_dead_lettered_total',
    help: 'Tasks dead-lettered by this process (handler or sweeps it ran), by type and reason.',
    labelNames: ['type', 'reason'],
    registers,
  });
  const duration = new Histogram({
    name: 'aftercall_task_duration_seconds',
    help: 'Duration of one attempt, by type.',
    labelNames: ['type'],
    buckets: ATTEMPT_BUCKETS,
    registers,
  });
  const latency = new Histogram({
    name: 'aftercall_task_latency_seconds',
    help: 'From creation (or the scheduled run time, for scheduled tasks) to completion, by type.',
    labelNames: ['type'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const sweeperRuns = new Counter({
    name: 'aftercall_sweeper_runs_total',
    help: 'Expiry sweeps run by this process.',
    registers,
  });
  const sweeperExpired = new Counter({
    name: 'aftercall_sweeper_expired_total',
    help: 'Jobs the expiry sweeps of this process dead-lettered, by type.',
    labelNames: ['type'],
    registers,
  });
  const sweeperDuration = new Histogram({
    name: 'aftercall_sweeper_duration_seconds',
    help: 'Duration of one expiry sweep.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const providerRequests = new Counter({
    name: 'aftercall_provider_requests_total',
    help: 'Requests to providers, by provider and status (HTTP status, network_error, timeout).',
    labelNames: ['provider', 'status'],
    registers,
  });
  const providerDuration = new Histogram({
    name: 'aftercall_provider_request_duration_seconds',
    help: 'Duration of one provider request.',
    labelNames: ['provider'],
    buckets: ATTEMPT_BUCKETS,
    registers,
  });
  const workerUp = new Gauge({
    name: 'aftercall_worker_up',
    help: '1 for each task type this process serves.',
    labelNames: ['type'],
    registers,
  });

  // Fleet-wide, read from Redis at scrape time (identical on every pod: aggregate with max).
  let cached: { at: number; state: Promise<FleetState> } | undefined;
  const fleet = () => {
    if (!cached || clock() - cached.at >= cacheMs) {
      const state = readFleetState(options.client, options.prefix);
      cached = { at: clock(), state };
      state.catch(() => {
        cached = undefined; // a failed read is not reused
      });
    }
    return cached.state;
  };
  let lastCreated: Partial<Record<TaskType, number>> = {};
  new Counter({
    name: 'aftercall_tasks_created_total',
    help: 'Tasks created by the producers, by type; kept in Redis and read at scrape time (fleet-wide: aggregate with max).',
    labelNames: ['type'],
    registers,
    async collect() {
      const state = await fleet();
      for (const type of fleetTypes) {
        const value = state.created[type];
        const previous = lastCreated[type] ?? 0;
        if (value < previous) {
          // Redis lost the counter (flushed or restarted without persistence): a counter reset.
          this.reset();
          lastCreated = {};
        }
        this.inc({ type }, value - (lastCreated[type] ?? 0));
        lastCreated[type] = value;
      }
    },
  });
  /**
   * A counter kept in Redis, exported as a Prometheus counter: each scrape adds what Redis
   * gained since the last; a value below the last one (Redis lost it) is a counter reset.
   */
  const redisCounter = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: (state: FleetState) => [Record<L, string>, number][],
  ) => {
    let last = new Map<string, number>();
    new Counter({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        const rows = read(await fleet());
        const key = (labels: Record<L, string>) => labelNames.map((label) => labels[label]).join('\u0000');
        if (rows.some(([labels, value]) => value < (last.get(key(labels)) ?? 0))) {
          this.reset();
          last = new Map();
        }
        for (const [labels, value] of rows) {
          this.inc(labels as Partial<Record<L, string | number>>, value - (last.get(key(labels)) ?? 0));
          last.set(key(labels), value);
        }
      },
    });
  };
  redisCounter(
    'aftercall_conversations_total',
    'Conversations whose outcomes created tasks, by outcome and sentiment (unknown when not given); counted by the producers in Redis, read at scrape time (fleet-wide: aggregate with max).',
    ['outcome', 'sentiment'],
    (state) =>
      Object.entries(state.conversations.conversations).map(([key, value]) => {
        const [outcome = '', sentiment = 'unknown'] = key.split(':');
        return [{ outcome, sentiment }, value];
      }),
  );
  redisCounter(
    'aftercall_conversations_settled_total',
    'Conversations whose follow-up settled: complete (every task completed) or partial (some dead-lettered); kept in Redis, read at scrape time (fleet-wide: aggregate with max).',
    ['result'],
    (state) => SETTLED_RESULTS.map((result) => [{ result }, state.conversations.settled[result]]),
  );
  new Gauge({
    name: 'aftercall_queue_jobs',
    help: 'Jobs by type and state (waiting, delayed, active, retrying); fleet-wide: aggregate with max.',
    labelNames: ['type', 'state'],
    registers,
    async collect() {
      const state = await fleet();
      for (const type of fleetTypes)
        for (const queueState of QUEUE_STATES) this.set({ type, state: queueState }, state.jobs[type][queueState]);
    },
  });
  new Gauge({
    name: 'aftercall_dead_letter_jobs',
    help: 'Dead-letter depth by type and reason; fleet-wide: aggregate with max.',
    labelNames: ['type', 'reason'],
    registers,
    async collect() {
      const state = await fleet();
      for (const type of fleetTypes)
        for (const reason of DEAD_LETTER_REASONS) this.set({ type, reason }, state.deadLetters[type][reason]);
    },
  });
  new Gauge({
    name: 'aftercall_queue_workers',
    help: "BullMQ workers connected to the type's queue (from Redis' client list); fleet-wide: aggregate with max.",
    labelNames: ['type'],
    registers,
    async collect() {
      const state = await fleet();
      for (const type of fleetTypes) this.set({ type }, state.workers[type]);
    },
  });

  // Destinations (rate limits, holds, circuits).
  const transitions = new Counter({
    name: 'aftercall_destination_transitions_total',
    help: "Changes of a destination's state, by destination and new state (counted by the process that made them).",
    labelNames: ['destination', 'to'],
    registers,
  });
  const rateLimited = new Counter({
    name: 'aftercall_rate_limited_total',
    help: '429 answers received, by destination (this process).',
    labelNames: ['destination'],
    registers,
  });
  const waits = new Counter({
    name: 'aftercall_destination_waits_total',
    help: 'Jobs that waited for their destination, using no attempt, by destination and reason (rate_limit, circuit).',
    labelNames: ['destination', 'reason'],
    registers,
  });
  let watched: readonly string[] = [];
  let readDestination: ((destination: string) => Promise<DestinationStatus>) | undefined;
  let destinationCache: { at: number; states: Promise<DestinationStatus[]> } | undefined;
  new Gauge({
    name: 'aftercall_destination_state',
    help: "1 for a destination's current state (closed, open, half_open, held); fleet-wide: aggregate with max.",
    labelNames: ['destination', 'state'],
    registers,
    async collect() {
      if (!readDestination || watched.length === 0) return;
      if (!destinationCache || clock() - destinationCache.at >= cacheMs) {
        const states = Promise.all(watched.map((destination) => readDestination!(destination)));
        destinationCache = { at: clock(), states };
        states.catch(() => {
          destinationCache = undefined;
        });
      }
      for (const status of await destinationCache.states) {
        for (const state of DESTINATION_STATES) {
          this.set({ destination: status.destination, state }, status.state === state ? 1 : 0);
        }
      }
    },
  });

  // Zero-initialised series, so rates exist before the first event.
  for (const type of taskTypes) {
    completed.inc({ type }, 0);
    retries.inc({ type }, 0);
    for (const result of ['success', 'retryable_error', 'terminal_error']) attempts.inc({ type, result }, 0);
    for (const reason of DEAD_LETTER_REASONS) deadLettered.inc({ type, reason }, 0);
    sweeperExpired.inc({ type }, 0);
  }
  sweeperRuns.inc(0);

  return {
    registry,
    onJobOutcome(event) {
      const type = event.type;
      if (event.attemptResult && event.calledProvider) {
        duration.observe({ type }, event.durationMs / 1000);
        attempts.inc({ type, result: event.attemptResult });
      }
      if (event.result === 'completed') {
        completed.inc({ type });
        if (event.dueAt !== undefined) latency.observe({ type }, Math.max(0, clock() - event.dueAt) / 1000);
      } else if (event.result === 'retrying') {
        retries.inc({ type });
      } else if (event.result === 'dead_lettered' && event.reason) {
        deadLettered.inc({ type, reason: event.reason });
      }
      if (event.destination && event.result === 'postponed' && event.waitReason && event.waitReason !== 'shutdown') {
        waits.inc({ destination: event.destination, reason: event.waitReason });
      }
      if (event.destination && event.calledProvider && event.attemptResult === 'rate_limited') {
        rateLimited.inc({ destination: event.destination });
      }
    },
    onSweep(result) {
      sweeperRuns.inc();
      sweeperDuration.observe(result.durationMs / 1000);
      for (const [type, count] of Object.entries(result.expired)) {
        sweeperExpired.inc({ type }, count);
        deadLettered.inc({ type, reason: 'expired' }, count);
      }
    },
    observeProvider(provider, status, seconds) {
      providerRequests.inc({ provider, status });
      providerDuration.observe({ provider }, seconds);
    },
    onTransition(destination, to) {
      transitions.inc({ destination, to });
    },
    watchDestinations(destinations, read) {
      watched = destinations;
      readDestination = read;
      for (const destination of destinations) {
        rateLimited.inc({ destination }, 0);
        for (const reason of ['rate_limit', 'circuit']) waits.inc({ destination, reason }, 0);
      }
    },
    serving(types) {
      for (const type of types) workerUp.set({ type }, 1);
    },
  };
}
