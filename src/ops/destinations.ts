/**
 * The destinations an operator looks at and acts on: `aftercall circuit list|open|close`
 * (and the HTTP API or console, which reuse these functions).
 *
 * A destination is one place deliveries go: `resend`, `twilio`, or `webhook:<type>` (see
 * src/delivery/destination-policy.ts for what the fleet does with it). The destinations
 * shown are the ones the configuration routes the enabled task types to, plus every one
 * the fleet has recorded in Redis (a destination used by workers with another
 * configuration, or one an operator opened).
 *
 * Each one's view:
 *   state         closed | open | half_open | held (fleet-wide, from Redis)
 *   since         when it entered that state
 *   reason        why (a 5xx ratio, a 429's Retry-After, a 410, an operator)
 *   manual        set by an operator (`circuit open`) or a 410 Gone: it ends only with
 *                 `circuit close` (or, for `circuit open --for`, at its end, with a probe)
 *   nextProbe     open: when the one probe call may go (null: no end, until closed)
 *   until         open or held: when it ends by itself (null: no end, or closed)
 *   calls, failures, failureRatio   within the circuit's window (CIRCUIT_WINDOW):
 *                 calls made and how many failed retryably (5xx, timeout, network)
 *   rateLimit     the configured ceiling (`RESEND_RATE_LIMIT`...), null when none
 *   statedLimit   the limit the destination stated in its ratelimit-* headers to a worker
 *                 within the last 10 minutes (kept in Redis for the whole fleet), null when none
 *   limitInForce  the lower of the two, null when neither
 *
 * Opening and closing go through the same Redis script the workers' 429 and 410 handling
 * uses, so an operator's change takes effect at every worker's next delivery.
 */
import type { AftercallConfig } from '../config/environment.js';
import { formatDuration, toIso, type Clock } from '../contract/time.js';
import { ConfigError } from '../contract/validation-error.js';
import type { DeliveryProvider } from '../delivery/provider.js';
import { formatRateLimit, type RateLimit } from '../delivery/rate-limit.js';
import { resolveRoutes } from '../delivery/routing.js';
import { createDestinationStore, type DestinationState, type DestinationStore } from '../redis/destination-store.js';
import type { RedisClient } from '../redis/scripts.js';
import { resolveTaskConfigs, taskTypes, type TaskType } from '../tasks/catalog.js';

export interface DestinationView {
  destination: string;
  state: DestinationState;
  since: string | null;
  reason: string | null;
  manual: boolean;
  nextProbe: string | null;
  until: string | null;
  calls: number;
  failures: number;
  /** failures / calls within the window; null without calls. */
  failureRatio: number | null;
  /** The circuit's window the counts cover (CIRCUIT_WINDOW), e.g. `30s`. */
  window: string;
  /** Configured ceiling, e.g. `2/s`; null: no limit of ours. */
  rateLimit: string | null;
  /** The limit the destination stated (ratelimit-* headers), e.g. `2/s`; null: none lately. */
  statedLimit: string | null;
  /** The lower of the configured and the stated limit; null: neither. */
  limitInForce: string | null;
  /** Task types the configuration routes here (empty: only recorded in Redis). */
  types: TaskType[];
}

export interface RoutedDestination {
  types: TaskType[];
  rateLimit: RateLimit | undefined;
}

export interface RoutedDestinations {
  destinations: Map<string, RoutedDestination>;
  /** Types whose routes the configuration cannot resolve (a missing variable), with why. */
  problems: string[];
}

/**
 * The destinations the configuration routes the enabled task types to. A type whose route
 * cannot be resolved (its channel's variables are missing here) is left out and named in
 * `problems`, so an operator can still act on the others from an incomplete environment.
 */
export function routedDestinations(config: AftercallConfig): RoutedDestinations {
  const taskConfigs = resolveTaskConfigs(config.tasks);
  const destinations = new Map<string, RoutedDestination>();
  const problems: string[] = [];
  for (const type of taskTypes) {
    if (!taskConfigs.get(type)?.enabled) continue;
    let order: readonly DeliveryProvider[];
    try {
      order = resolveRoutes(config.delivery, [type]).get(type) ?? [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(`${type}: ${error.issues.map((issue) => `${issue.path} ${issue.message}`).join('; ')}`);
      continue;
    }
    for (const provider of order) {
      const name = provider.destination(type);
      const entry = destinations.get(name) ?? {
        types: [],
        rateLimit: provider.rateLimit(config.delivery.values, type),
      };
      entry.types.push(type);
      destinations.set(name, entry);
    }
  }
  return { destinations, problems };
}

function lowerLimit(a: RateLimit | undefined, b: RateLimit | undefined): string | null {
  if (!a || !b) return a || b ? formatRateLimit((a ?? b)!) : null;
  return formatRateLimit(b.limit / b.periodMs < a.limit / a.periodMs ? b : a);
}

export interface DestinationOps {
  /** Routed and recorded destinations, sorted by name. */
  names(): Promise<string[]>;
  list(): Promise<DestinationView[]>;
  read(destination: string): Promise<DestinationView>;
  /** An operator pause: open until `now + forMs`, then a probe; without `forMs`, until `close`. */
  open(destination: string, options?: { forMs?: number; reason?: string }): Promise<DestinationView>;
  /** Closed: counters, grants and turns cleared; a 410's or an operator's hold ends. */
  close(destination: string): Promise<{ previous: DestinationState; view: DestinationView }>;
  readonly problems: readonly string[];
}

/** A destination name that is neither routed by this configuration nor recorded in Redis. */
export class UnknownDestinationError extends Error {
  override readonly name = 'UnknownDestinationError';
  constructor(
    readonly destination: string,
    readonly known: readonly string[],
  ) {
    super(
      `unknown destination ${JSON.stringify(destination)}; expected one of ${known.length ? known.join(', ') : '(none: no destination is configured or recorded)'}`,
    );
  }
}

export interface DestinationOpsOptions {
  client: RedisClient;
  config: AftercallConfig;
  clock?: Clock;
  /** Given in place of one built on `client` (tests). */
  store?: DestinationStore;
}

export function createDestinationOps(options: DestinationOpsOptions): DestinationOps {
  const { config } = options;
  const clock = options.clock ?? Date.now;
  const store = options.store ?? createDestinationStore(options.client, config.prefix);
  const routed = routedDestinations(config);
  const windowMs = config.circuit.windowMs;

  const view = async (destination: string): Promise<DestinationView> => {
    const status = await store.read(destination, clock(), windowMs);
    const route = routed.destinations.get(destination);
    return {
      destination,
      state: status.state,
      since: status.since ? toIso(status.since) : null,
      reason: status.reason || null,
      manual: status.manual,
      nextProbe: status.state === 'open' && status.until ? toIso(status.until) : null,
      until: (status.state === 'open' || status.state === 'held') && status.until ? toIso(status.until) : null,
      calls: status.calls,
      failures: status.failures,
      failureRatio: status.calls ? Math.round((status.failures / status.calls) * 1000) / 1000 : null,
      window: formatDuration(windowMs),
      rateLimit: route?.rateLimit ? formatRateLimit(route.rateLimit) : null,
      statedLimit: status.stated ? formatRateLimit(status.stated) : null,
      limitInForce: lowerLimit(route?.rateLimit, status.stated),
      types: route?.types ?? [],
    };
  };

  const names = () => store.list([...routed.destinations.keys()]);
  const known = async (destination: string) => {
    const all = await names();
    if (!all.includes(destination)) throw new UnknownDestinationError(destination, all);
  };

  return {
    problems: routed.problems,
    names,
    async list() {
      return Promise.all((await names()).map(view));
    },
    async read(destination) {
      await known(destination);
      return view(destination);
    },
    async open(destination, { forMs, reason } = {}) {
      await known(destination);
      const now = clock();
      const until = forMs ? now + forMs : 0;
      const why = reason ?? `opened by an operator${forMs ? ` for ${formatDuration(forMs)}` : ''}`;
      await store.set(destination, { action: 'open', now, until, reason: why });
      return view(destination);
    },
    async close(destination) {
      await known(destination);
      const previous = (await store.read(destination, clock(), windowMs)).state;
      await store.set(destination, { action: 'close', now: clock(), until: 0, reason: '' });
      return { previous, view: await view(destination) };
    },
  };
}
