/**
 * Routing: which provider delivers each task type, from the provider registry.
 *
 * `CHANNEL_<TYPE>` names a provider (`webhook`, `resend`, `twilio`: only those that can
 * send the type: an e-mail provider for types with an e-mail, an SMS provider for types
 * with an SMS, the webhook for any) or `auto`, the default. `auto` tries, in the
 * registry's order, every configured provider that supports the type (SMS, then e-mail),
 * and closes the chain with the webhook when the type has a URL or nothing else is
 * configured:
 *   - send_email: Resend when RESEND_API_KEY is set, else the webhook;
 *   - reminders and surveys: Twilio when configured and the customer has a phone; else
 *     Resend when configured and the customer has an e-mail address; else the webhook;
 *   - CRM, ticket, callback: the webhook.
 * A provider that is chosen but not configured stops the worker at start, naming each
 * missing variable. A task none of its providers can reach (an SMS-only route and a
 * customer without a phone) is dead-lettered as terminal, with the reason.
 */
import type { DeliveryPort, DeliveryRequest } from '../contract/delivery-port.js';
import { ConfigError, type FieldIssue } from '../contract/validation-error.js';
import type { RedisClient } from '../redis/scripts.js';
import type { TaskType } from '../tasks/catalog.js';
import { TerminalDeliveryError } from './errors.js';
import type { ProviderObserver } from './observer.js';
import type { RateLimit } from './rate-limit.js';
import { providerSupports, type DeliveryProvider, type VariableValues } from './provider.js';
import { PROVIDERS, providerNamed } from './registry.js';

export type ChannelSetting = 'auto' | string;

export const channelVariable = (type: string) => `CHANNEL_${type.toUpperCase()}`;

/** The providers that can send a type, in the registry's order. */
export function supportedChannels(type: TaskType): string[] {
  return PROVIDERS.filter((provider) => providerSupports(provider, type)).map((provider) => provider.name);
}

/** What routing needs of the configuration. */
export interface DeliveryConfig {
  /** `CHANNEL_<TYPE>` by type. */
  channels: Readonly<Record<TaskType, ChannelSetting>>;
  /** Every provider variable, parsed, by name. */
  values: VariableValues;
  /** Timeout of one provider request. */
  timeoutMs: number;
}

/** The providers a type tries, in order; throws ConfigError naming each missing variable. */
export function resolveRoutes(
  config: DeliveryConfig,
  types: readonly TaskType[],
  overridden: readonly TaskType[] = [],
): Map<TaskType, DeliveryProvider[]> {
  const issues: FieldIssue[] = [];
  const routes = new Map<TaskType, DeliveryProvider[]>();
  for (const type of types) {
    if (overridden.includes(type)) continue;
    const setting = config.channels[type];
    let order: DeliveryProvider[];
    if (setting === 'auto') {
      const webhook = PROVIDERS.find((provider) => provider.sends === 'payload');
      order = PROVIDERS.filter(
        (provider) => provider !== webhook && providerSupports(provider, type) && provider.configured(config.values),
      );
      // The webhook closes the chain when it has a URL (for customers the providers cannot
      // reach), and is the only channel when no provider is configured.
      if (webhook && (order.length === 0 || webhook.requires(config.values, type)[0]?.set)) order.push(webhook);
    } else {
      const chosen = providerNamed(setting);
      if (!chosen) throw new ConfigError([{ path: channelVariable(type), message: `unknown provider ${setting}` }]);
      order = [chosen];
    }
    const why = `${type} is delivered through ${order.map((provider) => provider.name).join(', then ')} (${channelVariable(type)}=${setting})`;
    for (const provider of order) {
      for (const need of provider.requires(config.values, type)) {
        if (!need.set && !issues.some((issue) => issue.path === need.variable)) {
          issues.push({ path: need.variable, message: `required: ${need.why ? `${why}; ${need.why}` : why}` });
        }
      }
    }
    routes.set(type, order);
  }
  if (issues.length) throw new ConfigError(issues);
  return routes;
}

export interface DeliveryRouterOptions {
  config: DeliveryConfig;
  types: readonly TaskType[];
  redis: RedisClient;
  prefix: string;
  observe?: ProviderObserver;
  /** Ports given in place of the configured providers (tests). */
  ports?: Partial<Record<TaskType, DeliveryPort>>;
}

/** The delivery port of a worker process: routes each task to its provider, and names its destination. */
export interface DeliveryRouter extends DeliveryPort {
  /** The destination a request goes to (its first reachable provider); undefined for a port given in place (tests). */
  destinationOf(request: DeliveryRequest): string | undefined;
  /** Every destination the served types can reach, with its configured rate limit. */
  destinations(): ReadonlyMap<string, RateLimit | undefined>;
}

/** One delivery port for the served types, routing each task to its provider. */
export function createDeliveryRouter(options: DeliveryRouterOptions): DeliveryRouter {
  const { config } = options;
  const given = options.ports ?? {};
  const routes = resolveRoutes(config, options.types, Object.keys(given) as TaskType[]);
  const ports = new Map<DeliveryProvider, DeliveryPort>();
  for (const order of routes.values()) {
    for (const provider of order) {
      if (ports.has(provider)) continue;
      const types = [...routes].filter(([, uses]) => uses.includes(provider)).map(([served]) => served);
      ports.set(
        provider,
        provider.create({
          values: config.values,
          types,
          redis: options.redis,
          prefix: options.prefix,
          timeoutMs: config.timeoutMs,
          ...(options.observe && { observe: options.observe }),
        }),
      );
    }
  }
  const routePorts = new Map(
    [...routes].map(
      ([type, order]) =>
        [
          type,
          order.map((provider) => ({ port: ports.get(provider)!, destination: provider.destination(type) })),
        ] as const,
    ),
  );
  const destinations = new Map<string, RateLimit | undefined>();
  for (const [type, order] of routes) {
    for (const provider of order) destinations.set(provider.destination(type), provider.rateLimit(config.values, type));
  }
  const routeOf = (request: DeliveryRequest) =>
    routePorts.get(request.type as TaskType)?.find(({ port }) => !port.reaches || port.reaches(request));

  return {
    provider: 'router',
    destinationOf: (request) => (given[request.type as TaskType] ? undefined : routeOf(request)?.destination),
    destinations: () => destinations,
    async deliver(request, signal) {
      const type = request.type as TaskType;
      const port = given[type];
      if (port) return port.deliver(request, signal);
      const route = routeOf(request as DeliveryRequest);
      if (route) return route.port.deliver(request, signal);
      const names = (routePorts.get(type) ?? []).map((candidate) => candidate.port.provider);
      const missing = [
        ...(names.includes('twilio') ? ['no phone number'] : []),
        ...(names.includes('resend') ? ['no e-mail address'] : []),
      ];
      throw new TerminalDeliveryError(
        `no channel can reach this customer: ${type} goes through ${names.join(', ')} and the customer has ${missing.join(' and ')}`,
        { provider: names[0] ?? 'webhook' },
      );
    },
  };
}
