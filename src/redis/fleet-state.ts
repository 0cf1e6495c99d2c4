/**
 * The fleet-wide state, read from Redis: tasks created (a counter the producers keep in
 * Redis), queue depth by state, dead-letter depth by reason, and the number of BullMQ
 * workers per queue. One pipelined round trip per type (each in its own slot), all sent
 * at once, plus one CLIENT LIST, whatever the queue sizes (counters and list lengths only).
 */
import { DEAD_LETTER_REASONS, deadLetterCountsFrom, type DeadLetterReason } from './dead-letter-queue.js';
import { isBullmqWorkerName, listClientNames } from './bullmq-compat.js';
import { queueName, typeKeys } from './keys.js';
import type { RedisClient } from './scripts.js';
import { taskTypes, type TaskType } from '../tasks/catalog.js';

export const QUEUE_STATES = ['waiting', 'delayed', 'active', 'retrying'] as const;

export interface FleetState {
  created: Record<TaskType, number>;
  jobs: Record<TaskType, Record<(typeof QUEUE_STATES)[number], number>>;
  deadLetters: Record<TaskType, Record<DeadLetterReason, number>>;
  workers: Record<TaskType, number>;
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
        .hget(keys.stats, 'created')
        .zcard(keys.failed)
        .hgetall(keys.deadLetterCounts)
        .exec();
    }),
  );
  const [replies, clientList] = await Promise.all([perType, listClientNames(client)]);
  const state: FleetState = { created: {}, jobs: {}, deadLetters: {}, workers: {} } as FleetState;
  taskTypes.forEach((type, index) => {
    const values = (replies[index] ?? []).map(([error, value]) => {
      if (error) throw error;
      return value;
    });
    const [wait, paused, delayed, active, retrying, created, failed, counts] = values as [
      number,
      number,
      number,
      number,
      number,
      string | null,
      number,
      Record<string, string>,
    ];
    state.created[type] = Number(created ?? 0);
    state.jobs[type] = {
      waiting: wait + paused,
      delayed: Math.max(0, delayed - retrying),
      active,
      retrying: Math.min(retrying, delayed),
    };
    state.deadLetters[type] = deadLetterCountsFrom(failed, counts);
    state.workers[type] = clientList.filter((name) => isBullmqWorkerName(name, prefix, queueName(type))).length;
  });
  return state;
}
