/**
 * How the API answers errors. Every error is JSON `{ error, message?, issues? }` with a
 * stable `error` code; none echoes the request (a body may hold customer data).
 *
 *   400 invalid_outcome    the outcome breaks the contract: `issues` lists every field
 *   400 invalid_request    a query, a parameter or an admin body is wrong: `issues` likewise
 *   401 unauthorized / invalid_signature     403 forbidden     404 not_found
 *   413 body_too_large     above HTTP_BODY_LIMIT
 *   415 not_json           the body is not JSON (wrong Content-Type, or not parseable)
 *   503 redis_unavailable  Redis did not answer in time; with Retry-After (retrying is safe)
 *   500 internal           a bug: logged with its stack, never with the request
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { OutcomeValidationError, type FieldIssue } from '../contract/validation-error.js';
import { EnqueueError, RedisUnavailableError } from '../producer/producer.js';
import { whenReady } from '../redis/connection.js';
import type { RedisClient } from '../redis/scripts.js';
import { scrubText } from '../worker/logger.js';

export const RETRY_AFTER_SECONDS = 2;

/** A query, a parameter or a body that fails its schema. */
export class RequestValidationError extends Error {
  override readonly name = 'RequestValidationError';
  readonly statusCode = 400;
  constructor(
    readonly part: string,
    readonly issues: FieldIssue[],
  ) {
    super(`invalid ${part}: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`);
  }
}

/** Runs a Redis call for a request: waits for the connection, and turns any Redis failure into RedisUnavailableError (503). */
export type RedisCall = <T>(call: () => Promise<T>) => Promise<T>;

/**
 * A RedisCall on the server's connection. The connection does not queue commands while it
 * is not ready (a request must not hang), so each call first waits for it, at most
 * `timeoutMs`, as the producer does: a request right after start-up or a reconnection
 * waits briefly instead of failing.
 */
export function redisCaller(client: RedisClient, timeoutMs: number): RedisCall {
  return async (call) => {
    try {
      await whenReady(client, timeoutMs);
      return await call();
    } catch (error) {
      if (error instanceof RedisUnavailableError) throw error;
      throw new RedisUnavailableError(`Redis did not answer: ${(error as Error).message}`, { cause: error });
    }
  };
}

const JSON_ERRORS = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY']);

export function errorHandler(logger: Logger) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof OutcomeValidationError) {
      return reply.code(400).send({ error: 'invalid_outcome', issues: error.issues });
    }
    if (error instanceof RequestValidationError) {
      return reply.code(400).send({ error: 'invalid_request', message: `invalid ${error.part}`, issues: error.issues });
    }
    if (error instanceof RedisUnavailableError || error instanceof EnqueueError) {
      return reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send({ error: 'redis_unavailable', message: 'Redis did not answer in time; retrying is safe (idempotent)' });
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send({ error: 'body_too_large', message: 'the body is larger than HTTP_BODY_LIMIT' });
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ error: 'not_json', message: 'expected Content-Type: application/json' });
    }
    if (JSON_ERRORS.has(error.code) || (error instanceof SyntaxError && error.statusCode === 400)) {
      return reply.code(415).send({ error: 'not_json', message: 'the body is not valid JSON' });
    }
    const status = error.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send({ error: 'bad_request', message: scrubText(error.message) });
    }
    logger.error(
      { err: { name: error.name, code: error.code, message: scrubText(error.message ?? ''), stack: error.stack } },
      `request failed: ${request.method} ${request.routeOptions.url ?? '(no route)'}`,
    );
    return reply.code(500).send({ error: 'internal', message: 'internal error (logged)' });
  };
}
