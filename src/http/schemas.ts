/**
 * The API's request and response shapes as zod schemas: the single source of the OpenAPI
 * document (schema/openapi.json, served at /v1/openapi.json). Request schemas are
 * enforced (query strings, parameters, the admin bodies); an outcome body is checked by
 * the producer itself (the compiled outcome schema, with field errors), so its schema
 * here only describes it (see `describedOnly`), and so do the raw platform bodies.
 */
import { z } from 'zod';
import { conversationOutcomeSchema, OUTCOME_KINDS } from '../contract/conversation-outcome.js';
import { TASK_STATES } from '../ops/status.js';
import { DEAD_LETTER_REASONS } from '../redis/dead-letter-queue.js';
import { ATTEMPT_RESULTS } from '../redis/attempt-history.js';
import { taskTypes } from '../tasks/catalog.js';

/** Schemas that document a body without being enforced by fastify (the handler checks it). */
const described = new WeakSet<object>();
export function describedOnly<T extends z.ZodType>(schema: T): T {
  described.add(schema);
  return schema;
}
export const isDescribedOnly = (schema: unknown) =>
  typeof schema === 'object' && schema !== null && described.has(schema);

export const MAX_BATCH = 100;

const taskType = z.enum(taskTypes as unknown as [string, ...string[]]);
const isoTime = z.string().meta({ format: 'date-time' });

export const fieldIssue = z
  .object({ path: z.string().meta({ example: 'customer.email' }), message: z.string() })
  .meta({ id: 'FieldIssue' });

export const errorBody = z
  .object({
    error: z.string().meta({ description: 'A stable code: invalid_outcome, unauthorized, not_found, ...' }),
    message: z.string().optional(),
    issues: z.array(fieldIssue).optional(),
  })
  .meta({ id: 'Error' });

export const outcomeBody = conversationOutcomeSchema.meta({ id: 'ConversationOutcome' });

export const enqueueResult = z
  .object({
    conversationId: z.string(),
    tasks: z.array(
      z.object({
        type: taskType,
        jobId: z.string(),
        idempotencyKey: z.string(),
        runAt: isoTime,
        expiresAt: isoTime,
        created: z.boolean().meta({ description: 'false when this outcome was already enqueued (nothing new)' }),
        expired: z.boolean(),
      }),
    ),
    skipped: z.array(z.object({ type: taskType, reason: z.string() })),
  })
  .meta({ id: 'EnqueueResult' });

export const batchItemResult = z
  .union([
    z.object({ index: z.number().int(), status: z.literal(202), result: enqueueResult }),
    z.object({
      index: z.number().int(),
      status: z.union([z.literal(400), z.literal(503)]),
      error: z.string(),
      message: z.string().optional(),
      issues: z.array(fieldIssue).optional(),
    }),
  ])
  .meta({ id: 'BatchItemResult' });

export const batchResult = z.object({ results: z.array(batchItemResult) }).meta({ id: 'BatchResult' });

export const attemptRecord = z
  .object({
    attempt: z.number().int(),
    startedAt: isoTime,
    durationMs: z.number().int(),
    result: z.enum(ATTEMPT_RESULTS),
    destination: z.string().nullable(),
    status: z.number().int().nullable(),
    error: z.string().nullable().meta({ description: 'scrubbed of e-mail addresses and phone numbers' }),
    spanId: z.string().optional().meta({ description: "the attempt's span id, when it was traced" }),
  })
  .meta({ id: 'AttemptRecord', description: 'one attempt of a task (the last 20 are kept, oldest first)' });

export const taskStatus = z
  .object({
    type: taskType,
    jobId: z.string(),
    idempotencyKey: z.string(),
    state: z.enum(TASK_STATES),
    attempts: z.number().int(),
    lastError: z.string().nullable(),
    deadLetterReason: z.enum(DEAD_LETTER_REASONS).nullable(),
    runAt: isoTime.nullable(),
    expiresAt: isoTime.nullable(),
    finishedAt: isoTime.nullable(),
    history: z.array(attemptRecord),
  })
  .meta({ id: 'TaskStatus' });

export const conversationParams = z.object({
  conversationId: z
    .string()
    .min(1)
    .max(200)
    .meta({ description: 'the outcome\'s conversationId (platform calls: "<platform>:<call id>")' }),
});

export const deadLetterEntry = z
  .object({
    type: taskType,
    jobId: z.string(),
    idempotencyKey: z.string().nullable(),
    conversationId: z.string().nullable(),
    reason: z.enum(DEAD_LETTER_REASONS),
    lastError: z.string().nullable(),
    attempts: z.number().int(),
    createdAt: isoTime.nullable(),
    expiresAt: isoTime.nullable(),
    deadLetteredAt: isoTime.nullable(),
    history: z.array(attemptRecord),
    payload: z.unknown(),
  })
  .meta({ id: 'DeadLetterEntry' });

const limit = (fallback: number, max: number) =>
  z.coerce
    .number({ error: `expected an integer from 1 to ${max}` })
    .int({ error: `expected an integer from 1 to ${max}` })
    .min(1, { error: `expected an integer from 1 to ${max}` })
    .max(max, { error: `expected an integer from 1 to ${max}` })
    .default(fallback);

const cursor = z
  .string()
  .regex(/^\d{1,9}$/, { error: 'expected the nextCursor of a previous page' })
  .optional();

/** A selector's time bound: ISO-8601 with an offset. */
const timeBound = (description: string) =>
  z.iso
    .datetime({ offset: true, error: 'expected an ISO-8601 date-time with offset, e.g. 2026-12-01T09:00:00Z' })
    .optional()
    .meta({ description });

export const deadLetterQuery = z.strictObject({
  type: taskType.optional(),
  reason: z.enum(DEAD_LETTER_REASONS).optional(),
  since: timeBound('dead-lettered at or after this time'),
  until: timeBound('dead-lettered at or before this time'),
  limit: limit(100, 1000),
  cursor,
});

export const deadLetterPage = z
  .object({ items: z.array(deadLetterEntry), nextCursor: z.string().nullable() })
  .meta({ id: 'DeadLetterPage' });

export const deadLetterAction = z
  .strictObject({
    type: taskType,
    jobId: z.string().min(1).optional().meta({ description: 'one entry; or give all: true' }),
    all: z.boolean().optional().meta({ description: 'every entry of the type (with reason: those of that reason)' }),
    reason: z.enum(DEAD_LETTER_REASONS).optional(),
    since: timeBound('with all: entries dead-lettered at or after this time'),
    until: timeBound('with all: entries dead-lettered at or before this time'),
    extend: z
      .string()
      .regex(/^\d+(\.\d+)?(ms|s|m|h|d)?$/, { error: 'expected a duration such as 30m or 2h' })
      .optional()
      .meta({ description: 'replay only: a new expiry this long from now' }),
    dryRun: z.boolean().optional().meta({ description: 'count what would be acted on, and act on nothing' }),
  })
  .refine((body) => !body.jobId !== !body.all, { error: 'expected either jobId or all: true', path: ['jobId'] })
  .refine((body) => !body.jobId || (!body.reason && !body.since && !body.until), {
    error: 'reason, since and until select entries for all: true, not for jobId',
    path: ['jobId'],
  })
  .meta({ id: 'DeadLetterAction' });

export const deadLetterActionResult = z
  .object({
    action: z.enum(['replay', 'purge']),
    dryRun: z.boolean(),
    matched: z.number().int().meta({ description: 'entries selected' }),
    done: z.number().int().meta({ description: 'entries replayed or purged (0 on a dry run)' }),
    expired: z
      .number()
      .int()
      .meta({ description: 'replay: selected entries whose expiry has passed; replayed only with extend' }),
    failed: z.array(z.object({ jobId: z.string(), error: z.string() })),
  })
  .meta({ id: 'DeadLetterActionResult' });

export const platformBody = describedOnly(
  z.record(z.string(), z.unknown()).meta({ description: "the platform's webhook payload, signed over its raw bytes" }),
);

export const platformAnswer = z
  .union([
    z.object({ accepted: z.literal(true), conversationId: z.string(), result: enqueueResult }),
    z.object({
      accepted: z.literal(false),
      id: z.string().meta({ description: 'the rejected-events entry' }),
      reason: z.string(),
    }),
  ])
  .meta({ id: 'PlatformAnswer' });

export const ignoredAnswer = z.object({ ignored: z.string() }).meta({ id: 'IgnoredEvent' });

export const rejectedEvent = z
  .object({
    id: z.string(),
    platform: z.string(),
    reason: z.string(),
    issues: z.array(fieldIssue),
    receivedAt: isoTime.nullable(),
    lastReceivedAt: isoTime.nullable(),
    deliveries: z.number().int(),
    payload: z.string().meta({ description: 'the verified request body as received' }),
  })
  .meta({ id: 'RejectedEvent' });

export const rejectedQuery = z.strictObject({
  platform: z.enum(['vapi', 'retell', 'elevenlabs']).optional(),
  limit: limit(100, 1000),
  cursor,
});

export const rejectedPage = z
  .object({ items: z.array(rejectedEvent), nextCursor: z.string().nullable() })
  .meta({ id: 'RejectedPage' });

export const rejectedReplay = z
  .strictObject({
    ids: z.array(z.string().min(1)).min(1).max(1000).optional(),
    all: z.boolean().optional(),
    dryRun: z.boolean().optional(),
  })
  .refine((body) => !body.ids !== !body.all, { error: 'expected either ids or all: true', path: ['ids'] })
  .meta({ id: 'RejectedReplay' });

export const rejectedReplayResult = z
  .object({
    dryRun: z.boolean(),
    replayed: z.array(z.string()),
    rejected: z.array(z.object({ id: z.string(), reason: z.string() })),
    missing: z.array(z.string()),
  })
  .meta({ id: 'RejectedReplayResult' });

export const rejectedPurgeResult = z
  .object({ dryRun: z.boolean(), purged: z.array(z.string()), missing: z.array(z.string()) })
  .meta({ id: 'RejectedPurgeResult' });

export const health = z.object({ status: z.string() }).meta({ id: 'Health' });

export { OUTCOME_KINDS };
