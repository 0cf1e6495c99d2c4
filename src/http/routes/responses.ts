/** Documented answers of a route: a description and a JSON schema, by status. */
import type { z } from 'zod';
import { errorBody } from '../schemas.js';

export const json = (description: string, schema: z.ZodType) => ({
  description,
  content: { 'application/json': { schema } },
});

const DESCRIPTIONS: Record<number, string> = {
  400: 'invalid request or outcome: every field error is listed',
  401: 'missing or wrong credential',
  403: "the token's role does not allow this route",
  404: 'not found (a platform route whose secret is not configured)',
  413: 'body larger than HTTP_BODY_LIMIT',
  415: 'the body is not JSON',
  503: 'Redis did not answer in time; retry after Retry-After seconds',
};

export function errorResponses<S extends number>(...statuses: S[]): Record<S, ReturnType<typeof json>> {
  return Object.fromEntries(
    statuses.map((status) => [status, json(DESCRIPTIONS[status] ?? 'error', errorBody)]),
  ) as Record<S, ReturnType<typeof json>>;
}
