/**
 * API keys and roles. API_KEYS holds `role:token` pairs:
 *   ingest  posts outcomes
 *   read    reads conversation status and dead letters (and rejected platform events)
 *   admin   everything, replay and purge included
 *
 * A caller sends `Authorization: Bearer <token>`. The token is compared against every
 * configured key in constant time (SHA-256 digests through timingSafeEqual, no early
 * exit), and it is never logged. No token or an unknown one: 401; a known token whose
 * roles do not include the route's: 403. Each route names its roles in its `config.roles`;
 * a route without roles is public (/healthz, /readyz, /metrics, the OpenAPI document, and
 * the platform receivers, which check the platform's own signature instead).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKey, ApiRole } from './environment.js';

export interface RouteAuth {
  /** Roles allowed on the route, besides admin, which is allowed everywhere. */
  roles?: readonly ApiRole[];
}

declare module 'fastify' {
  interface FastifyContextConfig {
    roles?: readonly ApiRole[];
  }
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The roles a bearer token holds; an empty set for no token or an unknown one. */
export function createAuthenticator(keys: readonly ApiKey[]): (authorization: string | undefined) => Set<ApiRole> {
  const digests = keys.map((key) => ({ role: key.role, digest: sha256(key.token) }));
  return (authorization) => {
    const roles = new Set<ApiRole>();
    const match = authorization ? /^Bearer[ ]+(\S+)\s*$/i.exec(authorization) : null;
    if (!match) return roles;
    const presented = sha256(match[1]!);
    for (const { role, digest } of digests) {
      if (timingSafeEqual(presented, digest)) roles.add(role);
    }
    return roles;
  };
}

/** The onRequest hook that enforces each route's roles. */
export function authHook(keys: readonly ApiKey[]) {
  const authenticate = createAuthenticator(keys);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const allowed = request.routeOptions.config.roles;
    if (!allowed) return;
    const roles = authenticate(request.headers.authorization);
    if (!roles.size) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="aftercall"')
        .send({ error: 'unauthorized', message: 'expected Authorization: Bearer <token> with a key from API_KEYS' });
    }
    if (!roles.has('admin') && !allowed.some((role) => roles.has(role))) {
      return reply.code(403).send({
        error: 'forbidden',
        message: `this route needs the role ${[...allowed, 'admin'].filter((r, i, all) => all.indexOf(r) === i).join(' or ')}`,
      });
    }
  };
}
