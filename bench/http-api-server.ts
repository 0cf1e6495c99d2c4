/**
 * One HTTP server for the HTTP API benchmark (bench/http-api.ts), in a child process of
 * its own:
 *   node --import tsx bench/http-api-server.ts '{"side":"ours"|"bare","redisUrl":...,"prefix":...}'
 *
 * side 'ours': `aftercall serve`'s server (buildApiServer: fastify, auth, metrics, the
 *   producer) as configured by the environment, LOG_LEVEL info (the production default).
 * side 'bare': node:http with no framework: the same bearer check (constant time), the
 *   body read and parsed as JSON, the same `conversationEnded`, 202 with its result (400
 *   with the field errors, 503 when Redis is away).
 * Both print one line `{"port":N}` once listening, and stop on SIGTERM.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config/environment.js';
import { OutcomeValidationError } from '../src/contract/validation-error.js';
import { loadHttpConfig } from '../src/http/environment.js';
import { buildApiServer } from '../src/http/server.js';
import { createProducer } from '../src/producer/producer.js';

const { side, redisUrl, prefix, token } = JSON.parse(process.argv[2] ?? '{}') as {
  side: 'ours' | 'bare';
  redisUrl: string;
  prefix: string;
  token: string;
};
const env = {
  REDIS_URL: redisUrl,
  AFTERCALL_PREFIX: prefix,
  LOG_LEVEL: 'info',
  API_KEYS: `ingest:${token}`,
  HTTP_HOST: '127.0.0.1',
  HTTP_PORT: '0',
};
const config = loadConfig(env);
let close: () => Promise<void>;
let port: number;

if (side === 'ours') {
  const server = await buildApiServer({ config, http: loadHttpConfig(env) });
  port = Number(new URL(await server.listen()).port);
  close = () => server.close();
} else {
  const producer = createProducer({ redisUrl, prefix, timeoutMs: config.producerTimeoutMs });
  const expected = Buffer.from(`Bearer ${token}`);
  const send = (response: import('node:http').ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    response.end(text);
  };
  const server = createServer((request, response) => {
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return send(response, 401, { error: 'unauthorized' });
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(response, 415, { error: 'not_json' });
      }
      producer.conversationEnded(body).then(
        (result) => send(response, 202, result),
        (error: Error) =>
          error instanceof OutcomeValidationError
            ? send(response, 400, { error: 'invalid_outcome', issues: error.issues })
            : send(response, 503, { error: 'redis_unavailable' }),
      );
    });
  });
  server.keepAliveTimeout = 72_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await producer.close();
  };
}

process.stdout.write(`${JSON.stringify({ port })}\n`);
process.once('SIGTERM', () => {
  void close().then(() => process.exit(0));
});
