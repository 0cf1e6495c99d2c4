/**
 * Public operational routes: /healthz (alive), /readyz (Redis answers: 200, else 503),
 * /metrics (Prometheus text), /v1/openapi.json (this API's OpenAPI 3.1 document).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import type { RedisClient } from '../../redis/scripts.js';
import { health } from '../schemas.js';
import { json } from './responses.js';

export const READY_TIMEOUT_MS = 1_000;

export const operationRoutes: FastifyPluginAsync<{
  redis: RedisClient;
  registry: Registry;
  openapi: () => unknown;
}> = async (app, options) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness: 200 while the process runs',
        tags: ['operations'],
        response: { 200: json('alive', health) },
      },
    },
    async () => ({ status: 'ok' }),
  );
  api.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: 200 when Redis answers, 503 otherwise',
        tags: ['operations'],
        response: { 200: json('ready', health), 503: json('Redis does not answer', health) },
      },
    },
    async (_request, reply) => {
      let timer: NodeJS.Timeout | undefined;
      const ready = await Promise.race([
        Promise.resolve(options.redis.ping()).then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready' });
    },
  );
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations'] } }, async (_request, reply) =>
    reply.type(options.registry.contentType).send(await options.registry.metrics()),
  );
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => options.openapi());
};
