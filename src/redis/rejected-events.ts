/**
 * The rejected-events store: platform events (a Vapi, Retell or ElevenLabs webhook) that
 * carried a valid signature but could not be turned into a conversation outcome, kept
 * with the reason so that none is lost.
 *
 * Lifecycle: a receiver verifies an event, fails to map it (a booking without a start
 * time, a malformed phone number, an unknown outcome) and adds it here with the raw
 * payload and the field errors. The entry stays until it is replayed (mapped again,
 * usually after the mapping file was fixed, and enqueued; then removed) or purged. A
 * platform that delivers the same event again (same call) updates the one entry and
 * counts the delivery; it does not add a second.
 *
 * Keys, all in one hash slot (`{aftercall-ingest}`), so adding an entry is one MULTI:
 *   <prefix>:{aftercall-ingest}:rejected          sorted set: entry id by first receipt (ms)
 *   <prefix>:{aftercall-ingest}:rejected:<id>     hash: platform, reason, issues, payload,
 *                                                 receivedAt, lastReceivedAt, deliveries
 */
import type { FieldIssue } from '../contract/validation-error.js';
import { isoOrNull } from '../contract/time.js';
import { encodeKeyPart } from '../tasks/job-id.js';
import type { RedisClient } from './scripts.js';

export interface RejectedEvent {
  /** `<platform>:<call id>`, the conversation id the event would have had. */
  id: string;
  platform: string;
  reason: string;
  issues: FieldIssue[];
  receivedAt: string | null;
  lastReceivedAt: string | null;
  /** How often the platform delivered this event. */
  deliveries: number;
  /** The verified request body, byte for byte (as UTF-8 text). */
  payload: string;
}

export interface NewRejectedEvent {
  id: string;
  platform: string;
  reason: string;
  issues: FieldIssue[];
  payload: string;
  now: number;
}

export interface RejectedPage {
  items: RejectedEvent[];
  /** Pass back as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

export function rejectedKeys(prefix: string) {
  const base = `${prefix}:{aftercall-ingest}:rejected`;
  return { index: base, entry: (id: string) => `${base}:${encodeKeyPart(id)}` };
}

function fromHash(id: string, hash: Record<string, string>): RejectedEvent | undefined {
  if (!hash.platform) return undefined;
  let issues: FieldIssue[] = [];
  try {
    issues = JSON.parse(hash.issues ?? '[]') as FieldIssue[];
  } catch {
    // an unreadable list stays empty; the reason still says why
  }
  return {
    id,
    platform: hash.platform,
    reason: hash.reason ?? '',
    issues,
    receivedAt: isoOrNull(Number(hash.receivedAt)),
    lastReceivedAt: isoOrNull(Number(hash.lastReceivedAt)),
    deliveries: Number(hash.deliveries ?? 1),
    payload: hash.payload ?? '',
  };
}

export class RejectedEventStore {
  private readonly keys: ReturnType<typeof rejectedKeys>;
  constructor(
    private readonly client: RedisClient,
    prefix: string,
  ) {
    this.keys = rejectedKeys(prefix);
  }

  /** Keeps an event (or counts one more delivery of it). */
  async add(event: NewRejectedEvent): Promise<void> {
    const key = this.keys.entry(event.id);
    await this.client
      .multi()
      .zadd(this.keys.index, 'NX', event.now, event.id)
      .hsetnx(key, 'receivedAt', event.now)
      .hset(key, {
        platform: event.platform,
        reason: event.reason,
        issues: JSON.stringify(event.issues),
        payload: event.payload,
        lastReceivedAt: event.now,
      })
      .hincrby(key, 'deliveries', 1)
      .exec();
  }

  /** Records a new reason after a replay that failed again. */
  async update(id: string, reason: string, issues: FieldIssue[]): Promise<void> {
    const key = this.keys.entry(id);
    if (await this.client.exists(key)) await this.client.hset(key, { reason, issues: JSON.stringify(issues) });
  }

  async get(id: string): Promise<RejectedEvent | undefined> {
    return fromHash(id, await this.client.hgetall(this.keys.entry(id)));
  }

  /** Entries oldest first, `limit` at a time. */
  async list(options: { limit?: number; cursor?: string; platform?: string } = {}): Promise<RejectedPage> {
    const limit = options.limit ?? 100;
    let offset = Number(options.cursor ?? 0);
    if (!Number.isSafeInteger(offset) || offset < 0) offset = 0;
    const items: RejectedEvent[] = [];
    // With a platform filter a page may need more than one read of the index.
    for (;;) {
      const ids = await this.client.zrange(this.keys.index, String(offset), String(offset + limit - 1));
      if (!ids.length) return { items, nextCursor: null };
      const pipeline = this.client.pipeline();
      for (const id of ids) pipeline.hgetall(this.keys.entry(id));
      const replies = (await pipeline.exec()) ?? [];
      for (const [at, id] of ids.entries()) {
        offset += 1;
        const entry = fromHash(id, (replies[at]?.[1] ?? {}) as Record<string, string>);
        if (entry && (!options.platform || entry.platform === options.platform)) items.push(entry);
        if (items.length === limit) {
          const more = (await this.client.zcard(this.keys.index)) > offset;
          return { items, nextCursor: more ? String(offset) : null };
        }
      }
    }
  }

  /** Every id, oldest first. */
  async ids(): Promise<string[]> {
    return this.client.zrange(this.keys.index, '0', '-1');
  }

  async count(): Promise<number> {
    return this.client.zcard(this.keys.index);
  }

  /** Removes an entry (replayed or purged). Returns false when it was not there. */
  async remove(id: string): Promise<boolean> {
    const replies = await this.client.multi().zrem(this.keys.index, id).del(this.keys.entry(id)).exec();
    return Number(replies?.[0]?.[1] ?? 0) === 1;
  }
}
