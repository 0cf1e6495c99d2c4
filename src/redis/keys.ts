/**
 * Queue names and Redis keys.
 *
 * Every task type has its own BullMQ queue named `{<type>}`: the braces are a Redis
 * Cluster hash tag, so every key of one type (the queue's lists and sets, its jobs, its
 * dead-letter entries, its expiry index, its booking records) hashes to one slot, and
 * the types spread over the shards. Whatever must be atomic stays inside one type's slot;
 * nothing atomic spans two types.
 *
 * Layout, with the default prefix `aftercall`:
 *   aftercall:{send_email}:wait|delayed|active|failed|...   BullMQ's own keys (named in bullmq-compat.ts)
 *   aftercall:{send_email}:<jobId>                          a job (BullMQ hash)
 *   aftercall:{send_email}:failed                           the type's dead-letter store
 *   aftercall:{send_email}:expiry                           expiry index: jobId by expiresAt
 *   aftercall:{send_email}:retrying                         jobs waiting for a retry (for metrics)
 *   aftercall:{send_email}:dead-letter-counts               dead-letter depth by reason
 *   aftercall:{send_email}:id                               BullMQ's job counter: the tasks created (bullmq-compat.ts)
 *   aftercall:{send_email}:stats                            counters kept in Redis (conversations, settled)
 *   aftercall:{update_crm}:settle:<convId>                  a conversation's follow-up countdown (its anchor type's slot)
 *   aftercall:{schedule_reminder}:scope:<bookingId>         the booking's current reminder
 *   aftercall:{schedule_reminder}:conversation:<convId>     the reminder a conversation created
 *   aftercall:{schedule_reminder}:sms-ledger:<key>          what Twilio was sent for a task (twilio.ts)
 *   aftercall:{aftercall-maintenance}:...                   the sweeper's scheduler queue
 */
import { DEFAULT_PREFIX, PREFIX_PATTERN } from '../config/defaults.js';
import { encodeKeyPart } from '../tasks/job-id.js';
import { BULLMQ_JOB_KEY_SUFFIXES, type BullmqKeySuffix } from './bullmq-compat.js';

export function queueName(type: string): string {
  return `{${type}}`;
}

export const MAINTENANCE_QUEUE = '{aftercall-maintenance}';

export interface TypeKeys {
  /** `<prefix>:{<type>}:`, the prefix of every key of the type; a job's key is base + jobId. */
  base: string;
  wait: string;
  paused: string;
  delayed: string;
  prioritized: string;
  active: string;
  completed: string;
  failed: string;
  stalled: string;
  events: string;
  meta: string;
  marker: string;
  /** BullMQ's job counter: its add increments it, so it counts the type's tasks created. */
  id: string;
  expiry: string;
  retrying: string;
  deadLetterCounts: string;
  stats: string;
  job(jobId: string): string;
  lock(jobId: string): string;
  scope(scopeId: string): string;
  conversation(conversationId: string): string;
  /** What a conversation record's key starts with: `<base>conversation:`. */
  conversationPrefix: string;
  smsLedger(idempotencyKey: string): string;
  /** What a conversation's follow-up countdown key starts with: `<base>settle:` (plus the encoded id). */
  settlePrefix: string;
}

export function typeKeys(prefix: string, type: string): TypeKeys {
  const base = `${prefix}:${queueName(type)}:`;
  const bullmq = (suffix: BullmqKeySuffix) => `${base}${suffix}`;
  return {
    base,
    wait: bullmq('wait'),
    paused: bullmq('paused'),
    delayed: bullmq('delayed'),
    prioritized: bullmq('prioritized'),
    active: bullmq('active'),
    completed: bullmq('completed'),
    failed: bullmq('failed'),
    stalled: bullmq('stalled'),
    events: bullmq('events'),
    meta: bullmq('meta'),
    marker: bullmq('marker'),
    id: bullmq('id'),
    expiry: `${base}expiry`,
    retrying: `${base}retrying`,
    deadLetterCounts: `${base}dead-letter-counts`,
    stats: `${base}stats`,
    job: (jobId) => `${base}${jobId}`,
    lock: (jobId) => `${base}${jobId}${BULLMQ_JOB_KEY_SUFFIXES.lock}`,
    scope: (scopeId) => `${base}scope:${encodeKeyPart(scopeId)}`,
    conversation: (conversationId) => `${base}conversation:${encodeKeyPart(conversationId)}`,
    conversationPrefix: `${base}conversation:`,
    smsLedger: (idempotencyKey) => `${base}sms-ledger:${encodeKeyPart(idempotencyKey)}`,
    settlePrefix: `${base}settle:`,
  };
}

export { DEFAULT_PREFIX, PREFIX_PATTERN };
