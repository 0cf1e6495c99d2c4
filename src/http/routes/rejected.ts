/**
 * Rejected platform events (redis/rejected-events.ts):
 *   GET  /v1/platforms/rejected?platform=&limit=&cursor=   (read)   oldest first
 *   POST /v1/platforms/rejected/replay                      (admin)  map again and enqueue
 *   POST /v1/platforms/rejected/purge                       (admin)  delete for good
 * Both actions take `ids` or `all: true`, and `dryRun`.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { RejectedEventStore } from '../../redis/rejected-events.js';
import type { RedisCall } from '../errors.js';
import type { Ingest } from '../platforms/ingest.js';
import { rejectedPage, rejectedPurgeResult, rejectedQuery, rejectedReplay, rejectedReplayResult } from '../schemas.js';
import { errorResponses, json } from './responses.js';

export const rejectedRoutes: FastifyPluginAsync<{
  store: RejectedEventStore;
  ingest: Ingest;
  redisCall: RedisCall;
}> = async (app, options) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/v1/platforms/rejected',
    {
      config: { roles: ['read'] },
      schema: {
        summary: 'Verified platform events that could not be mapped, kept with the reason',
        tags: ['platforms'],
        security: [{ bearerAuth: [] }],
        querystring: rejectedQuery,
        response: { 200: json('a page of kept events', rejectedPage), ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) => {
      const { platform, limit, cursor } = request.query;
      return options.redisCall(() =>
        options.store.list({ limit, ...(cursor !== undefined && { cursor }), ...(platform && { platform }) }),
      );
    },
  );

  api.post(
    '/v1/platforms/rejected/replay',
    {
      config: { roles: ['admin'] },
      schema: {
        summary: 'Map kept events again (after the mapping was fixed); those that map are enqueued and removed',
        tags: ['platforms'],
        security: [{ bearerAuth: [] }],
        body: rejectedReplay,
        response: {
          200: json('what was (or, with dryRun, would be) replayed', rejectedReplayResult),
          ...errorResponses(400, 401, 403, 415, 503),
        },
      },
    },
    async (request) => {
      const { ids, all, dryRun = false } = request.body;
      const result = await options.redisCall(() =>
        options.ingest.replay({ ...(ids && { ids }), ...(all && { all }), dryRun }),
      );
      return { dryRun, ...result };
    },
  );

  api.post(
    '/v1/platforms/rejected/purge',
    {
      config: { roles: ['admin'] },
      schema: {
        summary: 'Delete kept events for good',
        tags: ['platforms'],
        security: [{ bearerAuth: [] }],
        body: rejectedReplay,
        response: {
          200: json('what was (or, with dryRun, would be) purged', rejectedPurgeResult),
          ...errorResponses(400, 401, 403, 415, 503),
        },
      },
    },
    async (request) => {
      const { ids, all, dryRun = false } = request.body;
      const selected = all ? await options.redisCall(() => options.store.ids()) : (ids ?? []);
      const result = { dryRun, purged: [] as string[], missing: [] as string[] };
      for (const id of selected) {
        const present = dryRun
          ? (await options.redisCall(() => options.store.get(id))) !== undefined
          : await options.redisCall(() => options.store.remove(id));
        if (present) result.purged.push(id);
        else result.missing.push(id);
      }
      return result;
    },
  );
};
