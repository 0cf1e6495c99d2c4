/**
 * Ingest: a verified platform event becomes enqueued work or a kept rejection, never
 * nothing.
 *
 *   1. Read the call's facts (the platform's receiver) and map them to an outcome
 *      (mapping.ts).
 *   2. Enqueue it through the producer: the conversation id is `<platform>:<call id>`, so a
 *      repeated delivery of the same call creates nothing new.
 *   3. If the outcome cannot be built or breaks the contract, keep the raw payload and the
 *      field errors in the rejected-events store and count it in
 *      aftercall_ingest_rejected_total{platform}. Redis being away is not a rejection: the
 *      caller answers 503 so the platform may retry.
 *
 * `replay` maps kept events again (after the mapping was fixed) and enqueues those that
 * now map; the others stay, with their new reason.
 */
import { createHash } from 'node:crypto';
import { parseConversationOutcome } from '../../contract/conversation-outcome.js';
import { OutcomeValidationError, type FieldIssue } from '../../contract/validation-error.js';
import type { EnqueueResult, Producer } from '../../producer/producer.js';
import type { RejectedEventStore } from '../../redis/rejected-events.js';
import { mapCall, type PlatformMapping } from './mapping.js';
import type { PlatformName, PlatformReceiver } from './platform.js';
import { elevenlabs } from './elevenlabs.js';
import { retell } from './retell.js';
import { vapi } from './vapi.js';

export const PLATFORMS: Record<PlatformName, PlatformReceiver> = { vapi, retell, elevenlabs };

export type IngestResult =
  | { accepted: true; conversationId: string; result: EnqueueResult }
  | { accepted: false; id: string; reason: string; issues: FieldIssue[] };

export interface IngestOptions {
  producer: Producer;
  store: RejectedEventStore;
  mapping: PlatformMapping;
  /** Wraps each call to the store (the server's: wait for the connection, Redis failures as 503); default: as is. */
  redisCall?: <T>(call: () => Promise<T>) => Promise<T>;
  /** Called once per rejected event (the metric). */
  onRejected?(platform: PlatformName): void;
  clock?: () => number;
}

export interface ReplayResult {
  /** Ids enqueued and removed from the store. */
  replayed: string[];
  /** Ids that still do not map, with the reason. */
  rejected: { id: string; reason: string }[];
  /** Ids asked for that are not in the store. */
  missing: string[];
}

export const reasonOf = (issues: FieldIssue[]) => issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ');

export interface Ingest {
  /** Maps and enqueues one verified event (its payload already parsed). */
  ingest(platform: PlatformName, payload: unknown, raw: string): Promise<IngestResult>;
  replay(selection: { ids?: string[]; all?: boolean; dryRun?: boolean }): Promise<ReplayResult>;
}

export function createIngest(options: IngestOptions): Ingest {
  const clock = options.clock ?? Date.now;
  const stored = options.redisCall ?? (<T>(call: () => Promise<T>) => call());

  async function attempt(platform: PlatformName, payload: unknown): Promise<IngestResult> {
    const mapped = mapCall(platform, PLATFORMS[platform].callOf(payload), options.mapping);
    if (!mapped.ok) {
      return {
        accepted: false,
        id: mapped.conversationId ?? '',
        reason: reasonOf(mapped.issues),
        issues: mapped.issues,
      };
    }
    try {
      const result = await options.producer.conversationEnded(mapped.outcome);
      return { accepted: true, conversationId: mapped.conversationId, result };
    } catch (error) {
      if (!(error instanceof OutcomeValidationError)) throw error;
      const issues = mapped.describe(error.issues);
      return { accepted: false, id: mapped.conversationId, reason: reasonOf(issues), issues };
    }
  }

  async function ingest(platform: PlatformName, payload: unknown, raw: string): Promise<IngestResult> {
    const result = await attempt(platform, payload);
    if (result.accepted) return result;
    // Without a call id the event is kept under a digest of its bytes: a repeat is still one entry.
    const id = result.id || `${platform}:sha256-${createHash('sha256').update(raw).digest('hex').slice(0, 32)}`;
    await stored(() =>
      options.store.add({ id, platform, reason: result.reason, issues: result.issues, payload: raw, now: clock() }),
    );
    options.onRejected?.(platform);
    return { ...result, id };
  }

  async function replay(selection: { ids?: string[]; all?: boolean; dryRun?: boolean }): Promise<ReplayResult> {
    const ids = selection.all ? await stored(() => options.store.ids()) : (selection.ids ?? []);
    const outcome: ReplayResult = { replayed: [], rejected: [], missing: [] };
    for (const id of ids) {
      const event = await stored(() => options.store.get(id));
      if (!event || !Object.hasOwn(PLATFORMS, event.platform)) {
        outcome.missing.push(id);
        continue;
      }
      let payload: unknown;
      try {
        payload = JSON.parse(event.payload);
      } catch {
        outcome.rejected.push({ id, reason: 'the kept payload is not JSON' });
        continue;
      }
      const platform = event.platform as PlatformName;
      if (selection.dryRun) {
        // The whole check of a real replay (mapping and contract), without enqueueing.
        const mapped = mapCall(platform, PLATFORMS[platform].callOf(payload), options.mapping);
        let issues = mapped.ok ? [] : mapped.issues;
        if (mapped.ok) {
          try {
            parseConversationOutcome(mapped.outcome);
          } catch (error) {
            if (!(error instanceof OutcomeValidationError)) throw error;
            issues = mapped.describe(error.issues);
          }
        }
        if (issues.length) outcome.rejected.push({ id, reason: reasonOf(issues) });
        else outcome.replayed.push(id);
        continue;
      }
      const result = await attempt(platform, payload);
      if (result.accepted) {
        await stored(() => options.store.remove(id));
        outcome.replayed.push(id);
      } else {
        await stored(() => options.store.update(id, result.reason, result.issues));
        outcome.rejected.push({ id, reason: result.reason });
      }
    }
    return outcome;
  }

  return { ingest, replay };
}
