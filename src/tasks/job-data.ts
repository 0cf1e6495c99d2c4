/**
 * The data of a task's job as stored in Redis: an envelope the fleet reads for every
 * type (which conversation, which idempotency key, when it runs and expires) around the
 * type's own payload. The worker validates both again when it reads a job back, since
 * anything can be written into Redis; data that fails is dead-lettered as `invalid`.
 */
import { z } from 'zod';
import type { AnyTaskDefinition, TaskType } from './catalog.js';
import { taskTypes } from './catalog.js';
import { toFieldIssues, type FieldIssue } from '../contract/validation-error.js';

export interface TaskJobData<Payload = unknown> {
  type: TaskType;
  conversationId: string;
  idempotencyKey: string;
  /** Epoch ms when the producer accepted the outcome. */
  createdAt: number;
  runAt: number;
  expiresAt: number;
  /** The scope a scoped task belongs to (a reminder's booking id). */
  scopeId?: string;
  /** The conversation's anchor task type, where its follow-up is counted down (redis/conversation-settlement.ts). */
  anchor?: TaskType;
  /** The conversation's only task: finishing it settles the conversation (no countdown). */
  solo?: true;
  /** The W3C trace context of the producer's span, when it was called inside a trace (contract/tracing.ts). */
  trace?: { traceparent: string; tracestate?: string };
  payload: Payload;
}

const epochMs = z.number().int().nonnegative();

export const jobEnvelopeSchema = z.object({
  type: z.enum(taskTypes as [TaskType, ...TaskType[]]),
  conversationId: z.string().min(1),
  idempotencyKey: z.string().min(1),
  createdAt: epochMs,
  runAt: epochMs,
  expiresAt: epochMs,
  scopeId: z.string().optional(),
  anchor: z.enum(taskTypes as [TaskType, ...TaskType[]]).optional(),
  solo: z.literal(true).optional(),
  trace: z.object({ traceparent: z.string().max(100), tracestate: z.string().max(512).optional() }).optional(),
  payload: z.unknown(),
});

export type ParsedJobData =
  | { ok: true; data: TaskJobData }
  | { ok: false; issues: FieldIssue[]; envelope: Partial<TaskJobData> };

// Compiled by zod into generated functions, once per schema: the worker validates every
// job it picks up, and valid data (nearly all of it) takes the fast path. Data the fast
// path rejects is parsed again by the original schema, which reports the issues.
const compiledEnvelopeSchema = z.compile(jobEnvelopeSchema);
const compiledPayloadSchemas = new WeakMap<AnyTaskDefinition['payloadSchema'], AnyTaskDefinition['payloadSchema']>();

function compiledPayloadSchema(definition: AnyTaskDefinition): AnyTaskDefinition['payloadSchema'] {
  let compiled = compiledPayloadSchemas.get(definition.payloadSchema);
  if (!compiled) {
    compiled = z.compile(definition.payloadSchema);
    compiledPayloadSchemas.set(definition.payloadSchema, compiled);
  }
  return compiled;
}

/** Validates job data read from Redis against the envelope and the type's payload schema. */
export function parseJobData(definition: AnyTaskDefinition, data: unknown): ParsedJobData {
  const envelope = compiledEnvelopeSchema.safeParse(data, { reportInput: true });
  if (!envelope.success) {
    return { ok: false, issues: toFieldIssues(envelope.error.issues), envelope: salvage(data) };
  }
  if (envelope.data.type !== definition.type) {
    return {
      ok: false,
      issues: [{ path: 'type', message: `expected ${definition.type} (the job is in that type's queue)` }],
      envelope: envelope.data,
    };
  }
  const payload = compiledPayloadSchema(definition).safeParse(envelope.data.payload, { reportInput: true });
  if (!payload.success) {
    const issues = toFieldIssues(payload.error.issues).map((issue) => ({ ...issue, path: `payload.${issue.path}` }));
    return { ok: false, issues, envelope: envelope.data };
  }
  return { ok: true, data: { ...envelope.data, payload: payload.data } };
}

/** What can be read of a broken envelope, for the dead-letter entry. */
function salvage(data: unknown): Partial<TaskJobData> {
  if (typeof data !== 'object' || data === null) return {};
  const record = data as Record<string, unknown>;
  const out: Partial<TaskJobData> = {};
  if (typeof record.conversationId === 'string') out.conversationId = record.conversationId;
  if (typeof record.idempotencyKey === 'string') out.idempotencyKey = record.idempotencyKey;
  if (typeof record.expiresAt === 'number') out.expiresAt = record.expiresAt;
  if (typeof record.createdAt === 'number') out.createdAt = record.createdAt;
  return out;
}
