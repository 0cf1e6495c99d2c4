/**
 * `POST /v1/outcomes` (roles ingest, admin): one outcome, or a JSON array of up to 100.
 *
 * One outcome: 202 with what `conversationEnded` returns (a repeat: 202, `created: false`);
 * 400 `invalid_outcome` with every field error, nothing written; 503 with Retry-After when
 * Redis is away. An array: 207 with one result per item, in order, each the plan (202) or
 * its errors (400 / 503); one bad item does not reject the others.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { OutcomeValidationError } from '../../contract/validation-error.js';
import { EnqueueError, RedisUnavailableError, type Producer } from '../../producer/producer.js';
import { RETRY_AFTER_SECONDS } from '../errors.js';
import { batchResult, describedOnly, enqueueResult, MAX_BATCH, outcomeBody } from '../schemas.js';
import { errorResponses, json } from './responses.js';

export const outcomeRoutes: FastifyPluginAsync<{ producer: Producer }> = async (app, { producer }) => {
  async function one(index: number, item: unknown) {
    try {
      return { index, status: 202 as const, result: await producer.conversationEnded(item) };
    } catch (error) {
      if (error instanceof OutcomeValidationError) {
        return { index, status: 400 as const, error: 'invalid_outcome', issues: error.issues };
      }
      if (error instanceof RedisUnavailableError || error instanceof EnqueueError) {
        return { index, status: 503 as const, error: 'redis_unavailable', message: 'Redis did not answer in time' };
      }
      throw error;
    }
  }

  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/outcomes',
    {
      config: { roles: ['ingest'] },
      schema: {
        summary: 'Enqueue the follow-up work of one finished conversation, or of up to 100',
        tags: ['outcomes'],
        security: [{ bearerAuth: [] }],
        body: describedOnly(z.union([outcomeBody, z.array(outcomeBody).min(1).max(MAX_BATCH)])),
        response: {
          202: json('enqueued (created: false for a repeated outcome)', enqueueResult),
          207: json('an array was posted: one result per item, in order', batchResult),
          ...errorResponses(400, 401, 403, 413, 415, 503),
        },
      },
    },
    async (request, reply) => {
      const body = request.body as unknown;
      if (!Array.isArray(body)) return reply.code(202).send(await producer.conversationEnded(body));
      if (body.length === 0 || body.length > MAX_BATCH) {
        return reply.code(400).send({
          error: 'invalid_outcome',
          issues: [{ path: '(root)', message: `expected 1 to ${MAX_BATCH} outcomes in an array` }],
        });
      }
      const results = await Promise.all(body.map((item, index) => one(index, item)));
      if (results.every((result) => result.status === 503)) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
      return reply.code(207).send({ results });
    },
  );
};
