/**
 * The fleet-wide state, read from Redis: tasks created (BullMQ's job counter, which the
 * producers' adds increment: bullmq-compat.ts), conversations by outcome and sentiment and their settled follow-ups
 * (conversation-settlement.ts), queue depth by state, dead-letter depth by reason, and the number of BullMQ
 * workers per queue. One pipelined round trip per type (each in its own slot), all sent
 * at once, plus CLIENT LIST on every primary (each of a cluster's masters), whatever the queue
 * sizes (counters and list lengths only).
 */
import { deadLetterCountsFrom, type DeadLetterReason } from './dead-letter-queue.js';
import { isBullmqWorkerName, listClientNames } from './bullmq-compat.js';
import type { Redis } from 'ioredis';
import { primaries, primaryFor } from './connection.js';
import { queueName, typeKeys } from './keys.js';
import type { RedisClient } from './scripts.js';
import { addConversationCounts, emptyConversationCounts, type ConversationCounts } from './conversation-settlement.js';
import { taskTypes, type TaskType } from '../tasks/catalog.js';

export const QUEUE_STATES = ['waiting', 'delayed', 'active', 'retrying'] as const;

export interface FleetState {
  created: Record<TaskType, number>;
  jobs: Record<TaskType, Record<(typeof QUEUE_STATES)[number], number>>;
  deadLetters: Record<TaskType, Record<DeadLetterReason, number>>;
  workers: Record<TaskType, number>;
  /** Conversations by outcome and sentiment, and settled follow-ups, summed over the anchor types. */
  conversations: ConversationCounts;
}

/** Reads the fleet-wide state: one pipeline per type (its own slot) and one CLIENT LIST, all at once. */
export async function readFleetState(client: RedisClient, prefix: string): Promise<FleetState> {
  const perType = Promise.all(
    taskTypes.map((type) => {
      const keys = typeKeys(prefix, type);
      return client
        .pipeline()
        .llen(keys.wait)
        .llen(keys.paused)
        .zcard(keys.delayed)
        .llen(keys.active)
        .zcard(keys.retrying)
        .hgetall(keys.stats)
        .zcard(keys.failed)
        .hgetall(keys.deadLetterCounts)
        .get(keys.id)
        .exec();
    }),
  );
  const [replies, clientLists] = await Promise.all([perType, clientNamesByPrimary(client)]);
  const state = {
    created: {},
    jobs: {},
    deadLetters: {},
    workers: {},
    conversations: emptyConversationCounts(),
  } as FleetState;
  taskTypes.forEach((type, index) => {
    const values = (replies[index] ?? []).map(([error, value]) => {
      if (error) throw error;
      return value;
    });
    const [wait, paused, delayed, active, retrying, stats, failed, counts, created] = values as [
      number,
      number,
      number,
      number,
      number,
      Record<string, string>,
      number,
      Record<string, string>,
      string | null,
    ];
    state.created[type] = Number(created ?? 0);
    addConversationCounts(state.conversations, stats);
    state.jobs[type] = {
      waiting: wait + paused,
      delayed: Math.max(0, delayed - retrying),
      active,
      retrying: Math.min(retrying, delayed),
    };
    state.deadLetters[type] = deadLetterCountsFrom(failed, counts);
    // A worker's connections may reach every shard (a cluster client connects where it sends
    // commands); its blocking connection is always on the shard of the queue's slot: count there.
    const names = clientLists.get(primaryFor(client, typeKeys(prefix, type).base)) ?? [];
    state.workers[type] = names.filter((name) => isBullmqWorkerName(name, prefix, queueName(type))).length;
  });
  return state;
}

/** CLIENT LIST of every primary (the one server, or every master of a cluster), all at once. */
async function clientNamesByPrimary(client: RedisClient): Promise<Map<Redis, string[]>> {
  const nodes = primaries(client);
  const lists = await Promise.all(nodes.map((node) => listClientNames(node)));
  return new Map(nodes.map((node, index) => [node, lists[index]!]));
}
