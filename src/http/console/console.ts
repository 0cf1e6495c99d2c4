/**
 * The web console: server-rendered pages at /console on the HTTP API's server, for the
 * on-call engineer. No script, no build step; every value that came from a customer or a
 * voice agent is escaped (html.ts).
 *
 *   /console                    search by conversation id            (read)
 *   /console/conversation?id=   its timeline: tasks, states, expiry, every attempt   (read)
 *   /console/dead-letters       filtered by type, reason, time; replay and purge,
 *                               single or bulk, after a dry run       (read sees, admin acts)
 *   /console/destinations       circuits, holds and rate limits       (read)
 *   /console/queue-depths       jobs per type and state               (read)
 *   /console/queues             bull-board, read-only                 (read)
 *   /console/login, /logout     the session cookie (session.ts)
 *
 * Access (access.ts): a signed session cookie from a token of API_KEYS; `read` sees,
 * `admin` acts; every POST carries the session's CSRF token and must come from the console
 * itself. Mounted by the server with `app.register(consolePlugin, options)`.
 */
import { Queue } from 'bullmq';
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import type { AftercallConfig } from '../../config/environment.js';
import type { Clock } from '../../contract/time.js';
import { EnqueueError, RedisUnavailableError } from '../../producer/producer.js';
import { MAINTENANCE_QUEUE, queueName } from '../../redis/keys.js';
import type { RedisClient } from '../../redis/scripts.js';
import { taskTypes, type TaskType } from '../../tasks/catalog.js';
import { scrubText } from '../../worker/logger.js';
import type { ApiKey } from '../environment.js';
import type { RedisCall } from '../errors.js';
import { accessHooks, sessionOf } from './access.js';
import { bullBoard } from './bull-board.js';
import { html } from './html.js';
import { messagePage } from './layout.js';
import { conversationPages } from './pages/conversation.js';
import { deadLetterPages } from './pages/dead-letters.js';
import { destinationPages } from './pages/destinations.js';
import { loginPages } from './pages/login.js';
import { queueDepthPages } from './pages/queue-depths.js';
import { createSessionCodec } from './session.js';
import { CONSOLE_CSS } from './styles.js';

export interface ConsoleOptions {
  config: AftercallConfig;
  apiKeys: readonly ApiKey[];
  /** The server's connection (not closed by the console). */
  redis: RedisClient;
  redisCall: RedisCall;
  clock: Clock;
}

export const consolePlugin: FastifyPluginAsync<ConsoleOptions> = async (app, options) => {
  const { config, redis, redisCall, clock } = options;
  const keyPrefix = config.prefix;
  const codec = createSessionCodec(options.apiKeys);
  const hooks = accessHooks(codec, clock);
  app.addHook('onRequest', hooks.onRequest);
  app.addHook('preHandler', hooks.preHandler);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    const fields: Record<string, string> = {};
    for (const [name, value] of new URLSearchParams(body as string)) fields[name] = value;
    done(null, fields);
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const session = sessionOf(request);
    if (error instanceof RedisUnavailableError || error instanceof EnqueueError) {
      return messagePage(reply.header('retry-after', '2'), 503, {
        title: 'Redis did not answer',
        message: html`Redis did not answer in time. Nothing was changed by this request; reload to try again.`,
        session,
      });
    }
    const status = error.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return messagePage(reply, status, { title: 'Bad request', message: html`${scrubText(error.message)}`, session });
    }
    request.log.error(
      { err: { name: error.name, code: error.code, message: scrubText(error.message ?? ''), stack: error.stack } },
      `console request failed: ${request.method} ${request.routeOptions.url ?? '(no route)'}`,
    );
    return messagePage(reply, 500, { title: 'Internal error', message: html`Internal error (logged).`, session });
  });

  app.get('/console/', { config: { console: 'public' }, schema: { hide: true } }, (_request, reply) =>
    reply.redirect('/console', 308),
  );
  app.get('/console/assets/console.css', { config: { console: 'public' }, schema: { hide: true } }, (_r, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(CONSOLE_CSS),
  );

  // One BullMQ Queue per type, for the queue board and the completed counts; they write nothing.
  const queues = new Map<TaskType, Queue>(
    taskTypes.map((type) => [
      type,
      new Queue(queueName(type), { connection: redis, prefix: keyPrefix, skipMetasUpdate: true }),
    ]),
  );
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: redis, prefix: keyPrefix, skipMetasUpdate: true });
  app.addHook('onClose', async () => {
    await Promise.all([...queues.values(), maintenance].map((queue) => queue.close()));
  });

  let board = true;
  try {
    await app.register(bullBoard, { queues: [...queues.values(), maintenance] });
  } catch (error) {
    board = false;
    app.log.warn(
      { err: { message: (error as Error).message } },
      'console: the queue board (bull-board) is not mounted',
    );
  }

  await app.register(loginPages, { apiKeys: options.apiKeys, codec, clock });
  await app.register(conversationPages, { redis, keyPrefix, redisCall, clock });
  await app.register(deadLetterPages, { redis, keyPrefix, redisCall, clock });
  await app.register(destinationPages, { redis, config, redisCall, clock });
  await app.register(queueDepthPages, { redis, keyPrefix, redisCall, queues, board });
};
