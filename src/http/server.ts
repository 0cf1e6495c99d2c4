/**
 * `aftercall serve`: the HTTP API, on fastify 5. Stateless (every state is in Redis), so
 * several run behind a load balancer; it runs no workers.
 *
 * Each concern is a fastify plugin (routes/): outcomes, conversations, dead letters,
 * platform receivers, rejected platform events, operations. More can be mounted with
 * `app.register(plugin, options)` before `listen`: they get the same auth hook
 * (`config: { roles }`), error answers and metrics. The web console (console/) is mounted
 * so at /console, with its own session-cookie access (a browser sends no Bearer header).
 *
 * Per request: auth (constant-time), the handler, one metric sample; logs carry the route
 * pattern, status and duration only (debug), never a body, a token or a path parameter.
 */
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { Redis } from 'ioredis';
import { type AftercallConfig, loadConfig } from '../config/environment.js';
import { type HttpConfig, loadHttpConfig } from './environment.js';
import { ConfigError, toFieldIssues } from '../contract/validation-error.js';
import { systemClock, type Clock } from '../contract/time.js';
import { createProducer, type Producer } from '../producer/producer.js';
import { resolveTaskConfigs } from '../tasks/catalog.js';
import { createRedisConnection } from '../redis/connection.js';
import { RejectedEventStore } from '../redis/rejected-events.js';
import type { RedisClient } from '../redis/scripts.js';
import { createLogger, type Logger } from '../worker/logger.js';
import { authHook } from './auth.js';
import { errorHandler, redisCaller, RequestValidationError } from './errors.js';
import { httpMetrics, serverRegistry } from './metrics.js';
import { finishDocument } from './openapi.js';
import { consolePlugin } from './console/console.js';
import { createIngest, type Ingest } from './platforms/ingest.js';
import { loadMapping, type PlatformMapping } from './platforms/mapping.js';
import { conversationRoutes } from './routes/conversations.js';
import { deadLetterRoutes } from './routes/dead-letters.js';
import { operationRoutes } from './routes/operations.js';
import { outcomeRoutes } from './routes/outcomes.js';
import { platformRoutes } from './routes/platforms.js';
import { rejectedRoutes } from './routes/rejected.js';
import { isDescribedOnly } from './schemas.js';

export interface ApiServerOptions {
  config: AftercallConfig;
  http: HttpConfig;
  logger?: Logger;
  clock?: Clock;
  /** A producer of the caller's (not closed by the server); default: one made from `config`. */
  producer?: Producer;
  /** A connection for reads and admin calls (not closed by the server); default: one made from `config`. */
  redis?: RedisClient;
  /** Default: loaded from PLATFORM_MAPPING_FILE. */
  mapping?: PlatformMapping;
  /** Mount the web console at /console (console/console.ts); default true. */
  console?: boolean;
}

export interface ApiServer {
  app: FastifyInstance;
  ingest: Ingest;
  store: RejectedEventStore;
  /** Listens on `http.port` / `http.host` (0: a free port); resolves with the URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export const API_VERSION = '1.0.0';

/** Builds the server (routes, hooks, document) without listening. Throws ConfigError without API keys. */
export async function buildApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { config, http } = options;
  if (!http.apiKeys.length) {
    throw new ConfigError([
      {
        path: 'API_KEYS',
        message:
          'required: aftercall serve refuses to start without API keys; set API_KEYS to role:token pairs, e.g. ingest:<token>,admin:<token> (roles ingest, read, admin)',
      },
    ]);
  }
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: config.logLevel, name: 'aftercall-api' });
  const mapping = options.mapping ?? loadMapping(http.mappingFile, http.defaultOutcome);
  const ownsProducer = !options.producer;
  const producer =
    options.producer ??
    createProducer({
      redis: config.redis,
      waitReplicas: config.waitReplicas,
      prefix: config.prefix,
      tasks: config.tasks,
      dedupeWindowMs: config.dedupeWindowMs,
      timeoutMs: config.producerTimeoutMs,
    });
  const ownsRedis = !options.redis;
  const redis =
    options.redis ??
    createRedisConnection('producer', {
      redis: config.redis,
      timeoutMs: config.producerTimeoutMs,
      name: 'aftercall-api',
    });
  const store = new RejectedEventStore(redis, config.prefix);
  const redisCall = redisCaller(redis, config.producerTimeoutMs);
  const ingest = createIngest({
    producer,
    store,
    mapping,
    clock,
    redisCall,
    onRejected: (platform) => httpMetrics.rejected.inc({ platform }),
  });

  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: http.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Route patterns only in logs and metrics; ids never become labels.
    requestIdHeader: false,
  });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (isDescribedOnly(schema)) return (data: unknown) => ({ value: data });
    const zod = schema as z.ZodType;
    return (data: unknown) => {
      const result = zod.safeParse(data);
      return result.success
        ? { value: result.data }
        : { error: new RequestValidationError(httpPart ?? 'request', toFieldIssues(result.error.issues)) };
    };
  });
  // Answers are built by the handlers from typed values: plain JSON, no second validation.
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
  // JSON only: fastify's text/plain parser would hand a plain string to the handlers.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(errorHandler(logger));
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );
  app.addHook('onRequest', authHook(http.apiKeys));
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    httpMetrics.requests.inc({ route, method: request.method, status });
    httpMetrics.duration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    if (logger.isLevelEnabled('debug')) {
      logger.debug(
        { method: request.method, route, status, durationMs: Math.round(reply.elapsedTime * 100) / 100 },
        'request',
      );
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'aftercall HTTP API',
        version: API_VERSION,
        description:
          'Conversation outcomes from any voice platform or language: enqueue, status, dead letters, and signed receivers for Vapi, Retell and ElevenLabs. Generated from the zod schemas (src/http/schemas.ts).',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'a token of API_KEYS' } },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  const document = () => finishDocument(app.swagger() as unknown as Record<string, unknown>);

  await app.register(operationRoutes, { redis, registry: serverRegistry, openapi: document });
  await app.register(outcomeRoutes, { producer });
  await app.register(conversationRoutes, { redis, keyPrefix: config.prefix, redisCall });
  await app.register(deadLetterRoutes, { redis, keyPrefix: config.prefix, clock, redisCall });
  await app.register(rejectedRoutes, { store, ingest, redisCall });
  await app.register(platformRoutes, { http, ingest, clock });
  if (options.console !== false) {
    await app.register(consolePlugin, { config, apiKeys: http.apiKeys, redis, redisCall, clock });
  }

  let closed = false;
  return {
    app: app as unknown as FastifyInstance,
    ingest,
    store,
    async listen() {
      await app.ready();
      return app.listen({ port: http.port, host: http.host });
    },
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      if (ownsProducer) await producer.close();
      if (ownsRedis) redis.disconnect();
    },
  };
}

/**
 * The API's OpenAPI document, built from the routes without Redis and without the
 * environment (for `npm run schema`, which writes schema/openapi.json, and its staleness
 * test). The producer here only answers that it serves no requests.
 */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false }); // never connected
  const producer: Producer = {
    conversationEnded: () => Promise.reject(new Error('the document-only server serves no requests')),
    taskConfigs: resolveTaskConfigs(),
    close: async () => undefined,
  };
  const server = await buildApiServer({
    config: loadConfig({}),
    http: loadHttpConfig({ API_KEYS: 'admin:document-only-0000000000' }),
    logger: createLogger({ level: 'silent' }),
    producer,
    redis,
    console: false,
  });
  try {
    await server.app.ready();
    return finishDocument(server.app.swagger() as unknown as Record<string, unknown>);
  } finally {
    await server.close();
    redis.disconnect();
  }
}
