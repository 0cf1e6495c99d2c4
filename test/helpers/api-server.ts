/**
 * The HTTP API for tests: a real fastify server on a free loopback port, a real producer
 * and Redis connection (the test file's key prefix), with tokens for each role.
 */
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/environment.js';
import { loadHttpConfig } from '../../src/http/environment.js';
import { buildApiServer, type ApiServer, type ApiServerOptions } from '../../src/http/server.js';
import { createLogger } from '../../src/worker/logger.js';
import { REDIS_ENV } from './redis.js';

export const TOKENS = {
  ingest: 'tok-ingest-0123456789abcdef',
  read: 'tok-read-0123456789abcdef',
  admin: 'tok-admin-0123456789abcdef',
} as const;

export const API_KEYS = Object.entries(TOKENS)
  .map(([role, token]) => `${role}:${token}`)
  .join(',');

export const auth = (role: keyof typeof TOKENS) => ({ authorization: `Bearer ${TOKENS[role]}` });

export function apiEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...REDIS_ENV,
    AFTERCALL_PREFIX: prefix,
    API_KEYS,
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

export interface TestApi {
  url: string;
  server: ApiServer;
  /** Every log line the server wrote (when started with `logLevel`). */
  logs: string[];
  close(): Promise<void>;
}

export async function startApi(
  prefix: string,
  extra: Record<string, string> = {},
  options: Partial<Omit<ApiServerOptions, 'config' | 'http'>> & { logLevel?: 'trace' | 'debug' | 'info' } = {},
): Promise<TestApi> {
  const env = apiEnv(prefix, extra);
  const logs: string[] = [];
  const { logLevel, ...rest } = options;
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const server = await buildApiServer({
    config: loadConfig(env),
    http: loadHttpConfig(env),
    ...(logLevel && { logger: createLogger({ level: logLevel, destination, name: 'aftercall-api' }) }),
    ...rest,
  });
  const url = await server.listen();
  return { url, server, logs, close: () => server.close() };
}

export interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** One request; the body is parsed as JSON when it is JSON. */
// biome-ignore lint/suspicious/noExplicitAny: tests read answers of many shapes; each asserts what it reads
export async function call<T = any>(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Answer<T>> {
  const response = await fetch(url, { method, headers, ...(body !== undefined && { body }) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the text
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

export const postJson = (url: string, headers: Record<string, string>, value: unknown) =>
  call(url, 'POST', { 'content-type': 'application/json', ...headers }, JSON.stringify(value));
