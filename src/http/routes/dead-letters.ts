/**
 * Dead letters, through the dead-letter queue (redis/dead-letter-queue.ts):
 *   GET  /v1/dead-letters?type=&reason=&limit=&cursor=   (read)  newest first, a page at a time
 *   POST /v1/dead-letters/replay                          (admin) back to the queue, fresh attempts
 *   POST /v1/dead-letters/purge                           (admin) deleted for good
 * The actions take the CLI's selectors: `type`, and `jobId` or `all: true` (with `reason`,
 * and a time range of dead-lettering: `since`, `until`), `extend` (replay: a new expiry that
 * far from now), and `dryRun`, which counts what would be acted on (and how many have
 * expired) and changes nothing. An expired entry is never replayed without `extend`.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { parseDuration } from '../../contract/time.js';
import { actOnDeadLetters } from '../../ops/dead-letter-actions.js';
import { DeadLetterQueue } from '../../redis/dead-letter-queue.js';
import type { RedisClient } from '../../redis/scripts.js';
import type { TaskType } from '../../tasks/catalog.js';
import type { RedisCall } from '../errors.js';
import { deadLetterAction, deadLetterActionResult, deadLetterPage, deadLetterQuery } from '../schemas.js';
import { errorResponses, json } from './responses.js';

export const deadLetterRoutes: FastifyPluginAsync<{
  redis: RedisClient;
  keyPrefix: string;
  clock: () => number;
  redisCall: RedisCall;
}> = async (app, options) => {
  const dlq = new DeadLetterQueue(options.redis, options.keyPrefix);
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/v1/dead-letters',
    {
      config: { roles: ['read'] },
      schema: {
        summary: 'Dead-lettered tasks, newest first',
        tags: ['dead letters'],
        security: [{ bearerAuth: [] }],
        querystring: deadLetterQuery,
        response: { 200: json('a page of entries', deadLetterPage), ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) => {
      const { type, reason, limit, cursor, since, until } = request.query;
      const offset = Number(cursor ?? 0);
      const entries = await options.redisCall(() =>
        dlq.list({
          ...(type && { types: [type as TaskType] }),
          ...(reason && { reason }),
          ...(since && { since: Date.parse(since) }),
          ...(until && { until: Date.parse(until) }),
          limit: offset + limit + 1,
        }),
      );
      return {
        items: entries.slice(offset, offset + limit),
        nextCursor: entries.length > offset + limit ? String(offset + limit) : null,
      };
    },
  );

  for (const action of ['replay', 'purge'] as const) {
    api.post(
      `/v1/dead-letters/${action}`,
      {
        config: { roles: ['admin'] },
        schema: {
          summary:
            action === 'replay'
              ? 'Put dead-lettered tasks back on their queue with fresh attempts'
              : 'Delete dead-lettered tasks for good',
          tags: ['dead letters'],
          security: [{ bearerAuth: [] }],
          body: deadLetterAction,
          response: {
            200: json('what was (or, with dryRun, would be) done', deadLetterActionResult),
            ...errorResponses(400, 401, 403, 415, 503),
          },
        },
      },
      async (request) => {
        const { type, jobId, reason, since, until, extend, dryRun = false } = request.body;
        return options.redisCall(() =>
          actOnDeadLetters(
            dlq,
            action,
            {
              type: type as TaskType,
              ...(jobId !== undefined && { jobId }),
              ...(reason && { reason }),
              ...(since && { since: Date.parse(since) }),
              ...(until && { until: Date.parse(until) }),
            },
            { dryRun, clock: options.clock, ...(extend !== undefined && { extendMs: parseDuration(extend) }) },
          ),
        );
      },
    );
  }
};
