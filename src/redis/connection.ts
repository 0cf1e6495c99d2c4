/**
 * The one place Redis connections are made, for every process: the producer library, the
 * CLI commands, the workers, the sweeper, the metrics and the HTTP server.
 *
 * Three modes (a `RedisTarget`), each with optional TLS and ACL users:
 *   standalone  one Redis at a redis:// or rediss:// URL (user and password in the URL)
 *   cluster     a Redis Cluster, found through seed node URLs; commands go to the shard
 *               of their key's slot (each task type's keys share one hash tag, keys.ts)
 *   sentinel    a primary/replica set watched by Sentinels: the client asks them for the
 *               current primary and follows a failover; user, password, database and TLS
 *               of the primary come from a URL
 * TLS (rediss://) verifies the server against the system's CAs or `tls.caFile`; a client
 * certificate (`certFile` + `keyFile`) gives mutual TLS. The files are read once, here.
 *
 * Roles:
 * - Workers (and the sweeper, and the admin commands) reconnect forever and queue
 *   commands while disconnected: a Redis restart or failover pauses them, it does not
 *   kill them.
 * - Producers run inside the voice agent and must never make it wait: they do not queue
 *   commands while disconnected, every command times out, and `conversationEnded` has an
 *   overall deadline (see producer.ts). A producer keeps reconnecting in the background,
 *   so the next call succeeds as soon as Redis is back.
 */
import { readFileSync } from 'node:fs';
import calculateSlot from 'cluster-key-slot';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { DEFAULT_REDIS_URL } from '../config/defaults.js';
import type { RedisClient } from './scripts.js';

export type ConnectionRole = 'producer' | 'worker';

/** PEM files for TLS: the CA that signed the servers' certificates, and a client certificate for mutual TLS. */
export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export type RedisTarget =
  | {
      mode: 'standalone';
      /** redis:// or rediss:// URL, with user and password when needed. */
      url: string;
      tls?: TlsFiles;
    }
  | {
      mode: 'cluster';
      /** Seed nodes: redis:// or rediss:// URLs; user and password are taken from the first that has them. */
      nodes: string[];
      tls?: TlsFiles;
    }
  | {
      mode: 'sentinel';
      /** Sentinels as `host:port`. */
      sentinels: string[];
      /** The name of the primary the Sentinels watch (`sentinel monitor <name> ...`). */
      masterName: string;
      /** Password of the Sentinels themselves (`requirepass` of sentinel.conf). */
      sentinelPassword?: string;
      /** User, password, database and TLS (rediss://) of the primary; host and port are ignored. */
      url?: string;
      tls?: TlsFiles;
    };

export interface ConnectionSettings {
  /** Where Redis is (`config.redis`); a string is a standalone URL. */
  redis?: RedisTarget | string;
  /** @deprecated a standalone URL only: pass `redis: config.redis`, so that cluster and sentinel modes work. */
  url?: string;
  /** Producer only: how long a command may take before it fails. */
  timeoutMs?: number;
  /** Name shown by CLIENT LIST. */
  name?: string;
}

const reconnectForever = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5_000);

export function toTarget(redis: RedisTarget | string): RedisTarget {
  return typeof redis === 'string' ? { mode: 'standalone', url: redis } : redis;
}

/** Options of one connection by role, without the address (the mode adds it). */
export function redisOptions(
  role: ConnectionRole,
  settings: Pick<ConnectionSettings, 'timeoutMs' | 'name'>,
): RedisOptions {
  const common: RedisOptions = { connectionName: settings.name ?? `aftercall-${role}` };
  if (role === 'worker') {
    return { ...common, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: reconnectForever };
  }
  const timeoutMs = settings.timeoutMs ?? 2_000;
  return {
    ...common,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: reconnectForever,
  };
}

const pem = (file: string | undefined) => (file ? readFileSync(file) : undefined);

function tlsOptions(files: TlsFiles | undefined): ConnectionOptions {
  const options: ConnectionOptions = {};
  const ca = pem(files?.caFile);
  const cert = pem(files?.certFile);
  const key = pem(files?.keyFile);
  if (ca) options.ca = ca;
  if (cert) options.cert = cert;
  if (key) options.key = key;
  return options;
}

interface UrlParts {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls: boolean;
}

/** Reads a redis:// or rediss:// URL; throws naming what is wrong (never echoing a password). */
export function parseRedisUrl(text: string): UrlParts {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not a URL: expected redis://[user:password@]host:port[/db] (got ${describeRedisUrl(text)})`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new Error(`expected a redis:// or rediss:// URL (got ${describeRedisUrl(text)})`);
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new Error(`expected a database number after the host (got /${db})`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
    ...(url.username && { username: decodeURIComponent(url.username) }),
    ...(url.password && { password: decodeURIComponent(url.password) }),
    ...(db !== '' && { db: Number(db) }),
    tls: url.protocol === 'rediss:',
  };
}

/** Reads `host:port` (a Sentinel's address). */
export function parseHostPort(text: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text.trim());
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65_535)
    throw new Error(`expected host:port, e.g. sentinel-0:26379 (got ${JSON.stringify(text)})`);
  return { host: match[1]!, port: Number(match[2]) };
}

function credentials(parts: UrlParts | undefined): Pick<RedisOptions, 'username' | 'password' | 'db'> {
  return {
    ...(parts?.username && { username: parts.username }),
    ...(parts?.password && { password: parts.password }),
    ...(parts?.db !== undefined && { db: parts.db }),
  };
}

/** The ioredis options of a standalone or Sentinel connection. */
function singleOptions(role: ConnectionRole, settings: ConnectionSettings, target: RedisTarget): RedisOptions {
  const base = redisOptions(role, settings);
  if (target.mode === 'standalone') {
    const parts = parseRedisUrl(target.url);
    return {
      ...base,
      host: parts.host,
      port: parts.port,
      ...credentials(parts),
      ...(parts.tls && { tls: tlsOptions(target.tls) }),
    };
  }
  if (target.mode !== 'sentinel') throw new Error('not a single-node target');
  const parts = target.url ? parseRedisUrl(target.url) : undefined;
  return {
    ...base,
    sentinels: target.sentinels.map(parseHostPort),
    name: target.masterName,
    role: 'master',
    ...(target.sentinelPassword && { sentinelPassword: target.sentinelPassword }),
    ...credentials(parts),
    ...(parts?.tls && { tls: tlsOptions(target.tls) }),
    // Sentinels announce a switch of primary at once; without it the client notices only
    // when its connection to the old primary fails.
    failoverDetector: true,
    sentinelRetryStrategy: reconnectForever,
    ...(role === 'producer' && { sentinelCommandTimeout: settings.timeoutMs ?? 2_000 }),
  };
}

/** The ioredis options of a cluster connection, and its seed nodes. */
function clusterOptions(
  role: ConnectionRole,
  settings: ConnectionSettings,
  nodes: string[],
  files: TlsFiles | undefined,
): { seeds: { host: string; port: number }[]; options: ClusterOptions } {
  const parsed = nodes.map(parseRedisUrl);
  if (!parsed.length) throw new Error('a cluster needs at least one seed node URL');
  const withAuth = parsed.find((parts) => parts.password);
  const tls = parsed.some((parts) => parts.tls);
  const { retryStrategy: _ignored, enableOfflineQueue, ...perNode } = redisOptions(role, settings);
  return {
    seeds: parsed.map(({ host, port }) => ({ host, port })),
    options: {
      redisOptions: {
        ...perNode,
        ...credentials(withAuth && { ...withAuth, db: undefined }),
        ...(tls && { tls: tlsOptions(files) }),
      },
      enableOfflineQueue: enableOfflineQueue ?? true,
      enableReadyCheck: true,
      // Workers wait out a cluster that is down or failing over; producers fail fast.
      clusterRetryStrategy: role === 'worker' ? reconnectForever : (times) => Math.min(100 * times, 2_000),
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 300,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: 2_000,
      // With TLS, managed clusters (ElastiCache, Memorystore) answer CLUSTER SLOTS with
      // names their certificates are issued for: connect by name, do not resolve it first.
      ...(tls && { dnsLookup: (address, callback) => callback(null, address) }),
    },
  };
}

/** A connection of the given role to the target: `Redis` (standalone, Sentinel) or `Cluster`. */
export function createRedisConnection(role: ConnectionRole, settings: ConnectionSettings): RedisClient {
  const target = toTarget(settings.redis ?? settings.url ?? DEFAULT_REDIS_URL);
  let client: RedisClient;
  if (target.mode === 'cluster') {
    const { seeds, options } = clusterOptions(role, settings, target.nodes, target.tls);
    client = new Cluster(seeds, options);
  } else {
    client = new Redis(singleOptions(role, settings, target));
  }
  // Connection errors surface through the calls that need Redis; an 'error' listener
  // keeps ioredis from reporting every reconnect attempt as an unhandled error.
  client.on('error', () => undefined);
  return client;
}

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/** The primaries to read node-local state from (CLIENT LIST, INFO): every master of a cluster, or the one server. */
export function primaries(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/**
 * Which script calls `key` may share: on a cluster, its slot; otherwise one group (0),
 * since a standalone Redis (or Sentinel's primary) runs a script over any keys.
 */
export function scriptGroupOf(client: RedisClient, key: string): number {
  return isCluster(client) ? calculateSlot(key) : 0;
}

/**
 * The connection that carries commands for `key`: on a cluster, the primary serving the
 * key's slot (from the client's slot map); otherwise the client itself. For commands
 * about a connection's own writes, such as WAIT.
 */
export function primaryFor(client: RedisClient, key: string): Redis {
  if (!isCluster(client)) return client;
  const address = client.slots[calculateSlot(key)]?.[0];
  const primary = client
    .nodes('master')
    .find((node) => address !== undefined && `${node.options.host}:${node.options.port}` === address);
  if (!primary) throw new Error(`no primary known for the slot of ${key}: the cluster's slot map is not loaded`);
  return primary;
}

const readiness = new WeakMap<RedisClient, Promise<void>>();

/** Resolves when the connection is ready, or rejects after `timeoutMs`. Concurrent callers share one wait. */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  let waiting = readiness.get(client);
  if (!waiting) {
    waiting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        reject(new Error(`Redis is not reachable (no connection within ${timeoutMs} ms)`));
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      client.once('ready', onReady);
    }).finally(() => readiness.delete(client));
    readiness.set(client, waiting);
  }
  return waiting;
}

/** Redacts the password of a Redis URL for messages and logs. */
export function describeRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** Where a target points, for messages and logs, without passwords. */
export function describeRedisTarget(redis: RedisTarget | string): string {
  const target = toTarget(redis);
  if (target.mode === 'standalone') return `Redis at ${describeRedisUrl(target.url)}`;
  if (target.mode === 'cluster') return `Redis Cluster at ${target.nodes.map(describeRedisUrl).join(', ')}`;
  return `Redis primary "${target.masterName}" from Sentinels ${target.sentinels.join(', ')}`;
}
