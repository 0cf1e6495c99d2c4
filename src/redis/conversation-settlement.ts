/**
 * Conversation metrics: conversations by outcome and sentiment, and whether each one's
 * follow-up settled complete (every task completed) or partial (some dead-lettered).
 *
 * The constraint: a conversation's tasks live in as many slots as it has task types, and
 * nothing atomic may span two slots. So one task of each conversation is its *anchor*: the
 * first the plan names (update_crm for every outcome today). Its type's slot holds, for that
 * conversation, everything counted:
 *   - the producer's enqueue script of the anchor task (the call it makes anyway) counts the
 *     conversation in the anchor type's stats hash (`conversations:<outcome>:<sentiment>`)
 *     and adds the number of tasks to its countdown (`<prefix>:{<anchor>}:settle:<convId>`);
 *     tasks dead-lettered at enqueue (already expired) are left out and mark it partial;
 *     a repeated outcome (the anchor job exists) counts nothing again;
 *   - every task's job data names the anchor (`anchor`); when a worker finishes a task
 *     (completed, replaced, or dead-lettered by the handler or by BullMQ), it counts it down
 *     on the countdown in the anchor's slot: one command in one slot, atomic by itself.
 *     Workers batch these (ConversationSettler: at most one script call per anchor type per
 *     flush interval, 1 s by default), so a task costs no Redis round trip of its own;
 *   - the countdown reaching zero (after the producer's increment: another type's worker may
 *     finish first) deletes it and counts `settled:complete` or `settled:partial` in the same
 *     script (includes/settleConversation.lua);
 *   - a conversation with one task (job data `solo`) has no countdown: the worker's batch
 *     counts it settled directly. Per task, a countdown costs one command inside a script, a
 *     settlement three, the producer's side four (one for a solo task): measured by the
 *     redis-cost benchmark.
 * Workers export the counters, summed over the anchor types, as
 * aftercall_conversations_total{outcome,sentiment} and aftercall_conversations_settled_total{result}.
 *
 * What it does not see, by design (a metric, not a ledger): decrements a worker held when it
 * crashed (up to one flush interval), and tasks the expiry sweeper dead-letters (no worker
 * finishes them): those conversations never settle, and their countdowns expire after
 * SETTLE_TTL_MS. So `settled_total` can lag `conversations_total`; the share of complete
 * follow-ups is complete / (complete + partial), which both lags leave unbiased save for
 * the sweeper's expiries, which lower the partial side.
 */
import type { TaskType } from '../tasks/catalog.js';
import { encodeKeyPart } from '../tasks/job-id.js';
import { typeKeys } from './keys.js';
import { settleConversations, type RedisClient } from './scripts.js';

/** How long a countdown lives past its conversation's last expiry (ms): 2 days. */
export const SETTLE_TTL_MS = 2 * 24 * 3_600_000;
/** How often a worker sends the countdowns it collected (ms). */
export const SETTLE_FLUSH_MS = 1_000;

export const SETTLED_RESULTS = ['complete', 'partial'] as const;
export type SettledResult = (typeof SETTLED_RESULTS)[number];

/** The counters in a stats hash: conversations by `outcome:sentiment`, settled by result. */
export interface ConversationCounts {
  conversations: Record<string, number>;
  settled: Record<SettledResult, number>;
}

/** Adds a stats hash's conversation counters (HGETALL) into `into`. */
export function addConversationCounts(into: ConversationCounts, stats: Record<string, string>): ConversationCounts {
  for (const [field, value] of Object.entries(stats)) {
    if (field.startsWith('conversations:')) {
      const key = field.slice('conversations:'.length);
      into.conversations[key] = (into.conversations[key] ?? 0) + Number(value);
    } else if (field === 'settled:complete' || field === 'settled:partial') {
      const result = field.slice('settled:'.length) as SettledResult;
      into.settled[result] += Number(value);
    }
  }
  return into;
}

export const emptyConversationCounts = (): ConversationCounts => ({
  conversations: {},
  settled: { complete: 0, partial: 0 },
});

/**
 * Collects finished tasks per anchor type and counts them down in batches. `finished` is
 * synchronous and costs no I/O; `flush` sends one script call per anchor type.
 */
export class ConversationSettler {
  // Per anchor type, the encoded conversation ids and their flags (bit 0 completed, bit 1
  // solo), side by side: a second's finished tasks (thousands on a busy worker) outlive
  // many young-generation collections, and a tuple per task made each of them copy and
  // promote two objects more per task. The tuples the script takes are built at the flush.
  private pending = new Map<TaskType, { ids: string[]; flags: number[] }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly options: { flushMs?: number; onError?: (error: unknown) => void } = {},
  ) {}

  /**
   * A task of `conversationId`, anchored at `anchor`, finished: completed (or replaced), or not.
   * `solo`: it was the conversation's only task (no countdown; this settles it).
   */
  finished(anchor: TaskType, conversationId: string, completed: boolean, solo = false): void {
    let batch = this.pending.get(anchor);
    if (!batch) this.pending.set(anchor, (batch = { ids: [], flags: [] }));
    batch.ids.push(encodeKeyPart(conversationId));
    batch.flags.push((completed ? 1 : 0) | (solo ? 2 : 0));
    this.timer ??= setTimeout(() => void this.flush(), this.options.flushMs ?? SETTLE_FLUSH_MS).unref();
  }

  /** Sends what was collected; resolves once Redis has it. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batches = [...this.pending];
    this.pending = new Map();
    const sent = Promise.all(
      batches.map(([anchor, { ids, flags }]) => {
        const items = ids.map((id, i): [string, 0 | 1, 0 | 1] => [
          id,
          (flags[i]! & 1) as 0 | 1,
          (flags[i]! >> 1) as 0 | 1,
        ]);
        return settleConversations(this.client, typeKeys(this.prefix, anchor), { items, ttl: SETTLE_TTL_MS }).catch(
          (error: unknown) => this.options.onError?.(error),
        );
      }),
    ).then(() => undefined);
    this.flushing = this.flushing.then(() => sent);
    return this.flushing;
  }
}
