/**
 * Redis Cluster readiness: after real work (jobs delivered, retried, dead-lettered,
 * swept, reminders replaced), every key of one task type hashes to one slot, and the
 * types are spread over different slots.
 */
import calculateSlot from 'cluster-key-slot';
import { afterAll, describe, expect, it } from 'vitest';
import { sweepExpiredJobs } from '../src/worker/expiry-sweeper.js';
import { createProducer } from '../src/producer/producer.js';
import { conversationStatus } from '../src/ops/status.js';
import { taskTypes } from '../src/tasks/catalog.js';
import { startWorker } from '../src/worker/worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { keysWithPrefix, redis, REDIS_URL, removePrefix, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('slots');
const client = redis();

afterAll(async () => {
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('key layout', () => {
  it('keeps each task type in one hash slot', async () => {
    const receiver = await startReceiver();
    receiver.answer = (receipt) => (receipt.body.conversationId === 'slots-2' ? { status: 400 } : { status: 200 });
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    const worker = await startWorker({ config: testConfig(prefix, receiver.url), concurrency: 2 });
    const now = Date.now();
    await producer.conversationEnded(bookedOutcome('slots-1', now, { ticket: { id: 'T' } }));
    await producer.conversationEnded(resolvedOutcome('slots-2', now, { surveyOptIn: true }));
    await producer.conversationEnded({
      ...bookedOutcome('slots-3', now),
      outcome: 'rescheduled',
      booking: { ...bookedOutcome('slots-1', now).booking!, startsAt: new Date(now + 100 * 3_600_000).toISOString() },
    });
    await waitUntil(
      () => conversationStatus(client, prefix, 'slots-2'),
      (entries) => entries.some((entry) => entry.state === 'dead_lettered'),
      'a dead-letter entry',
    );
    await sweepExpiredJobs(client, { prefix, now: now + 1_000 * 3_600_000 });
    await worker.close();
    await producer.close();
    await receiver.close();

    const keys = await keysWithPrefix(client, prefix);
    const slotsByTag = new Map<string, Set<number>>();
    for (const key of keys) {
      const tag = /\{([^}]*)\}/.exec(key)?.[1];
      expect(tag, `key without a hash tag: ${key}`).toBeDefined();
      const slots = slotsByTag.get(tag!) ?? new Set<number>();
      slots.add(calculateSlot(key));
      slotsByTag.set(tag!, slots);
    }
    // Besides the types and the sweeper's queue: each delivery destination's state under its
    // own tag (fleet-wide, never atomic with a job), and the list of destinations.
    const destinationTags = [...slotsByTag.keys()].filter((tag) => tag.startsWith('dest:') || tag === 'destinations');
    expect(destinationTags.length).toBeGreaterThan(0);
    expect([...slotsByTag.keys()].filter((tag) => !destinationTags.includes(tag)).sort()).toEqual(
      ['aftercall-maintenance', ...taskTypes].sort(),
    );
    for (const [tag, slots] of slotsByTag) expect(slots.size, tag).toBe(1);
    const typeSlots = [...slotsByTag].filter(([tag]) => !destinationTags.includes(tag));
    expect(new Set(typeSlots.map(([, slots]) => [...slots][0])).size).toBe(typeSlots.length);
  });
});
