/**
 * The Redis connection variables: which mode (standalone, cluster, sentinel), TLS files,
 * and the producer's replica acknowledgement. Read by environment.ts; one mode at a time.
 *
 *   standalone  REDIS_URL (the default, redis://127.0.0.1:6379)
 *   cluster     REDIS_CLUSTER_NODES: comma-separated redis:// or rediss:// seed node URLs
 *   sentinel    REDIS_SENTINELS (host:port,...) and REDIS_SENTINEL_MASTER, optionally
 *               REDIS_SENTINEL_PASSWORD; REDIS_URL then gives the primary's user, password,
 *               database and TLS (its host is not used)
 *   TLS         rediss:// URLs; REDIS_TLS_CA_FILE for a private CA, REDIS_TLS_CERT_FILE
 *               and REDIS_TLS_KEY_FILE for mutual TLS
 */
import { accessSync, constants } from 'node:fs';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from '../contract/validation-error.js';
import { parseHostPort, parseRedisUrl, type RedisTarget, type TlsFiles } from '../redis/connection.js';
import { DEFAULT_REDIS_URL } from './defaults.js';

const optionalText = z
  .string()
  .optional()
  .transform((text) => text || undefined);

const list = (text: string | undefined) =>
  (text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const readableFile = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined || text === '') return undefined;
    try {
      accessSync(text, constants.R_OK);
      return text;
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected a readable PEM file (cannot read ${text})` });
      return z.NEVER;
    }
  });

export const redisVariables = {
  REDIS_CLUSTER_NODES: z
    .string()
    .optional()
    .transform((text, ctx) => {
      const nodes = list(text);
      for (const node of nodes) {
        try {
          parseRedisUrl(node);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `${(error as Error).message}; comma-separated seed node URLs` });
          return z.NEVER;
        }
      }
      return nodes;
    }),
  REDIS_SENTINELS: z
    .string()
    .optional()
    .transform((text, ctx) => {
      const sentinels = list(text);
      for (const sentinel of sentinels) {
        try {
          parseHostPort(sentinel);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `${(error as Error).message}; comma-separated` });
          return z.NEVER;
        }
      }
      return sentinels;
    }),
  REDIS_SENTINEL_MASTER: optionalText,
  REDIS_SENTINEL_PASSWORD: optionalText,
  REDIS_TLS_CA_FILE: readableFile,
  REDIS_TLS_CERT_FILE: readableFile,
  REDIS_TLS_KEY_FILE: readableFile,
  REDIS_WAIT_REPLICAS: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return 0;
      const value = Number(text);
      if (Number.isInteger(value) && value >= 0 && value <= 16) return value;
      ctx.addIssue({ code: 'custom', message: 'expected an integer from 0 to 16' });
      return z.NEVER;
    }),
};

export const redisDocs: Record<keyof typeof redisVariables, [string, string]> = {
  REDIS_CLUSTER_NODES: ['(none)', 'Redis Cluster mode: comma-separated redis:// or rediss:// seed node URLs'],
  REDIS_SENTINELS: ['(none)', 'Sentinel mode: comma-separated host:port of the Sentinels (with REDIS_SENTINEL_MASTER)'],
  REDIS_SENTINEL_MASTER: ['(none)', 'Sentinel mode: name of the primary the Sentinels monitor'],
  REDIS_SENTINEL_PASSWORD: ['(none)', "Sentinel mode: the Sentinels' own password"],
  REDIS_TLS_CA_FILE: ['(system CAs)', 'PEM file of the CA that signed the Redis servers (rediss:// only)'],
  REDIS_TLS_CERT_FILE: ['(none)', 'PEM client certificate for mutual TLS (with REDIS_TLS_KEY_FILE)'],
  REDIS_TLS_KEY_FILE: ['(none)', 'PEM private key of REDIS_TLS_CERT_FILE'],
  REDIS_WAIT_REPLICAS: ['0', 'producers acknowledge a task only once this many replicas have it (Redis WAIT)'],
};

type RedisValues = { [K in keyof typeof redisVariables]: z.output<(typeof redisVariables)[K]> };

/**
 * The Redis target the variables describe. Throws ConfigError when two modes are set at
 * once (naming both variables) or a mode is incomplete.
 */
export function redisTargetFrom(env: NodeJS.ProcessEnv, values: RedisValues & { REDIS_URL: string }): RedisTarget {
  const issues: FieldIssue[] = [];
  const urlSet = Boolean(env.REDIS_URL);
  const clusterSet = values.REDIS_CLUSTER_NODES.length > 0;
  const sentinelSet = values.REDIS_SENTINELS.length > 0;
  const modes = 'choose one mode: REDIS_URL (standalone), REDIS_CLUSTER_NODES (cluster) or REDIS_SENTINELS (sentinel)';
  if (clusterSet && urlSet)
    issues.push({ path: 'REDIS_CLUSTER_NODES', message: `REDIS_URL and REDIS_CLUSTER_NODES are both set: ${modes}` });
  if (clusterSet && sentinelSet)
    issues.push({
      path: 'REDIS_CLUSTER_NODES',
      message: `REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: ${modes}`,
    });
  if (sentinelSet && !values.REDIS_SENTINEL_MASTER)
    issues.push({ path: 'REDIS_SENTINEL_MASTER', message: 'required with REDIS_SENTINELS: the monitored primary' });
  if (!sentinelSet && values.REDIS_SENTINEL_MASTER)
    issues.push({ path: 'REDIS_SENTINELS', message: 'required with REDIS_SENTINEL_MASTER: host:port,...' });
  if (!sentinelSet && values.REDIS_SENTINEL_PASSWORD)
    issues.push({ path: 'REDIS_SENTINEL_PASSWORD', message: 'only used with REDIS_SENTINELS, which is not set' });
  if (Boolean(values.REDIS_TLS_CERT_FILE) !== Boolean(values.REDIS_TLS_KEY_FILE))
    issues.push({
      path: values.REDIS_TLS_CERT_FILE ? 'REDIS_TLS_KEY_FILE' : 'REDIS_TLS_CERT_FILE',
      message: 'mutual TLS needs both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE',
    });
  const urls = clusterSet ? values.REDIS_CLUSTER_NODES : [values.REDIS_URL || DEFAULT_REDIS_URL];
  const tls = urls.some((url) => parseRedisUrl(url).tls);
  const tlsFiles: TlsFiles = {
    ...(values.REDIS_TLS_CA_FILE && { caFile: values.REDIS_TLS_CA_FILE }),
    ...(values.REDIS_TLS_CERT_FILE && { certFile: values.REDIS_TLS_CERT_FILE }),
    ...(values.REDIS_TLS_KEY_FILE && { keyFile: values.REDIS_TLS_KEY_FILE }),
  };
  const tlsVariable = Object.keys(tlsFiles).length
    ? (['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'] as const).find((name) => values[name])
    : undefined;
  if (tlsVariable && !tls)
    issues.push({
      path: tlsVariable,
      message: `set, but Redis is reached without TLS: use rediss:// in ${clusterSet ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL'}`,
    });
  if (issues.length) throw new ConfigError(issues);
  const withTls = tls ? { tls: tlsFiles } : {};
  if (clusterSet) return { mode: 'cluster', nodes: values.REDIS_CLUSTER_NODES, ...withTls };
  if (sentinelSet)
    return {
      mode: 'sentinel',
      sentinels: values.REDIS_SENTINELS,
      masterName: values.REDIS_SENTINEL_MASTER!,
      ...(values.REDIS_SENTINEL_PASSWORD && { sentinelPassword: values.REDIS_SENTINEL_PASSWORD }),
      ...(urlSet && { url: values.REDIS_URL }),
      ...withTls,
    };
  return { mode: 'standalone', url: values.REDIS_URL || DEFAULT_REDIS_URL, ...withTls };
}
