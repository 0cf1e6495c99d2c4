/** `GET /v1/conversations/{conversationId}/tasks` (role read): what `aftercall status --json` prints. */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { conversationStatus } from '../../ops/status.js';
import type { RedisClient } from '../../redis/scripts.js';
import type { RedisCall } from '../errors.js';
import { conversationParams, taskStatus } from '../schemas.js';
import { errorResponses, json } from './responses.js';

export const conversationRoutes: FastifyPluginAsync<{
  redis: RedisClient;
  keyPrefix: string;
  redisCall: RedisCall;
}> = async (app, options) => {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/conversations/:conversationId/tasks',
    {
      config: { roles: ['read'] },
      schema: {
        summary: 'The state of each task of a conversation ([] for an unknown conversation)',
        tags: ['status'],
        security: [{ bearerAuth: [] }],
        params: conversationParams,
        response: { 200: json('one entry per task', z.array(taskStatus)), ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) =>
      options.redisCall(() => conversationStatus(options.redis, options.keyPrefix, request.params.conversationId)),
  );
};
