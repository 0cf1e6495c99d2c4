/**
 * The platform receivers: `POST /v1/platforms/{vapi,retell,elevenlabs}`, one route per
 * receiver in PLATFORMS. Each runs, in this order:
 *
 *   1. 404 when the platform's secret is not configured.
 *   2. The platform's signature over the raw body bytes (this plugin keeps bodies as
 *      Buffers; JSON is parsed only after the check). Bad or missing: 401, nothing stored.
 *   3. An event other than the one that ends a call: 200 `{ ignored: "<event>" }`.
 *   4. Map and enqueue (platforms/ingest.ts): 202 `{ accepted: true, ... }`; or keep it as
 *      rejected: 202 `{ accepted: false, reason }`, so the platform does not retry in vain.
 *      Redis away: 503 with Retry-After, so a platform that retries does.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { HttpConfig } from '../environment.js';
import type { Ingest } from '../platforms/ingest.js';
import { PLATFORMS } from '../platforms/ingest.js';
import { ignoredAnswer, platformAnswer, platformBody } from '../schemas.js';
import { errorResponses, json } from './responses.js';

export const platformRoutes: FastifyPluginAsync<{ http: HttpConfig; ingest: Ingest; clock: () => number }> = async (
  app,
  options,
) => {
  // Raw bytes for every content type, within this plugin only.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  for (const receiver of Object.values(PLATFORMS)) {
    app.withTypeProvider<ZodTypeProvider>().post(
      `/v1/platforms/${receiver.name}`,
      {
        schema: {
          summary: `${receiver.name} webhook (${receiver.endEvent}); ${receiver.signature.description}`,
          tags: ['platforms'],
          body: platformBody,
          response: {
            200: json('an event other than the one that ends a call, acknowledged', ignoredAnswer),
            202: json('enqueued, or kept as rejected with the reason (accepted: false)', platformAnswer),
            ...errorResponses(401, 404, 413, 503),
          },
        },
      },
      async (request, reply) => {
        if (!receiver.configured(options.http)) {
          return reply.code(404).send({
            error: 'not_found',
            message: `${receiver.name} is not configured: set ${receiver.configuredBy}`,
          });
        }
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const verified = receiver.verify({ headers: request.headers, body }, options.http, options.clock());
        if (!verified.ok) return reply.code(401).send({ error: 'invalid_signature', message: verified.reason });
        const raw = body.toString('utf8');
        let payload: unknown;
        try {
          payload = JSON.parse(raw);
        } catch {
          payload = undefined;
        }
        if (payload !== undefined) {
          const event = receiver.eventOf(payload);
          if (event !== receiver.endEvent) return reply.code(200).send({ ignored: event ?? '(no event type)' });
        }
        const result = await options.ingest.ingest(receiver.name, payload, raw);
        return reply
          .code(202)
          .send(
            result.accepted
              ? { accepted: true, conversationId: result.conversationId, result: result.result }
              : { accepted: false, id: result.id, reason: result.reason },
          );
      },
    );
  }
};
