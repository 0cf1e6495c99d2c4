/**
 * Conversation metrics: the producer counts conversations by outcome and sentiment in
 * Redis (a repeated outcome counts nothing again), workers count each conversation's
 * follow-up down as its tasks finish, and a worker's /metrics exports
 * aftercall_conversations_total{outcome,sentiment} and
 * aftercall_conversations_settled_total{result}: complete when every task completed, partial
 * when one was dead-lettered (by the worker, by the expiry sweeper, or already at enqueue). The countdown's order
 * does not matter: a task finished before the anchor's enqueue does not settle early.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { ConversationSettler } from '../src/redis/conversation-settlement.js';
import { readFleetState } from '../src/redis/fleet-state.js';
import { typeKeys } from '../src/redis/keys.js';
import { encodeKeyPart } from '../src/tasks/job-id.js';
import { sweepExpiredJobs } from '../src/worker/expiry-sweeper.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { freePort } from './helpers/free-port.js';
import { resolvedOutcome } from './helpers/outcomes.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { redis, removePrefix, TEST_REDIS, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const prefix = uniquePrefix('conversation-metrics');
const client = redis();
const producer = createProducer({ redis: TEST_REDIS, prefix });
let receiver: WebhookReceiver;
let worker: FleetWorker;

beforeAll(async () => {
  receiver = await startReceiver();
  // The ticket update of "cm-partial" is refused (terminal): its conversation settles partial.
  receiver.answer = (receipt) =>
    receipt.body.conversationId === 'cm-partial' && receipt.body.type === 'update_ticket'
      ? { status: 422 }
      : { status: 200 };
  worker = await startWorker({
    config: testConfig(prefix, receiver.url),
    concurrency: 4,
    sweeper: false,
    metricsPort: await freePort(),
  });
  await worker.ready;
});

afterAll(async () => {
  await worker.close();
  await producer.close();
  await receiver.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

async function scrape() {
  const response = await fetch(`${worker.metricsUrl}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

describe('conversation metrics', () => {
  it('counts conversations by outcome and sentiment, and their follow-ups as complete or partial', async () => {
    const now = Date.now();
    await producer.conversationEnded(resolvedOutcome('cm-complete', now, { sentiment: 'positive' }));
    await producer.conversationEnded(resolvedOutcome('cm-partial', now, { sentiment: 'negative' }));
    await producer.conversationEnded(resolvedOutcome('cm-no-sentiment', now, { ticket: undefined }));
    // A repeat of the same outcome creates nothing and counts nothing.
    await producer.conversationEnded(resolvedOutcome('cm-complete', now, { sentiment: 'positive' }));
    // Ended 10 days ago: its CRM update (4 h) has expired at enqueue, its ticket update (24 h) too.
    await producer.conversationEnded(resolvedOutcome('cm-stale', now - 10 * 24 * 3_600_000));

    const samples = await waitUntil(
      scrape,
      (s) =>
        sampleValue(s, 'aftercall_conversations_settled_total', { result: 'complete' }) === 2 &&
        sampleValue(s, 'aftercall_conversations_settled_total', { result: 'partial' }) === 2,
      'four conversations settled in /metrics',
    );
    expect(sampleValue(samples, 'aftercall_conversations_total', { outcome: 'resolved', sentiment: 'positive' })).toBe(
      1,
    );
    expect(sampleValue(samples, 'aftercall_conversations_total', { outcome: 'resolved', sentiment: 'negative' })).toBe(
      1,
    );
    expect(sampleValue(samples, 'aftercall_conversations_total', { outcome: 'resolved', sentiment: 'unknown' })).toBe(
      2,
    );
    // Settled countdowns are gone; nothing else is left behind in the anchor's slot.
    const crm = typeKeys(prefix, 'update_crm');
    for (const id of ['cm-complete', 'cm-partial', 'cm-no-sentiment', 'cm-stale']) {
      expect(await client.exists(crm.settlePrefix + encodeKeyPart(id)), id).toBe(0);
    }
    const state = await readFleetState(client, prefix);
    expect(state.conversations.settled).toEqual({ complete: 2, partial: 2 });
  });

  it('does not settle a conversation before the producer has counted its tasks in, whatever the order', async () => {
    // A prefix no worker serves: the test finishes the tasks itself, in the order it chooses.
    const own = uniquePrefix('conversation-order');
    const ownProducer = createProducer({ redis: TEST_REDIS, prefix: own });
    const settler = new ConversationSettler(client, own, { flushMs: 10 });
    try {
      const id = 'cm-order';
      const countdown = typeKeys(own, 'update_crm').settlePrefix + encodeKeyPart(id);
      // The ticket update finishes before the anchor's (CRM update's) enqueue has run.
      settler.finished('update_crm', id, true);
      await settler.flush();
      expect(await client.hget(countdown, 'remaining')).toBe('-1');
      expect(await client.pttl(countdown)).toBeGreaterThan(0);
      const result = await ownProducer.conversationEnded(resolvedOutcome(id));
      expect(result.tasks.map((task) => task.type).sort()).toEqual(['update_crm', 'update_ticket']);
      // Counted in: one task left, not settled.
      expect(await client.hget(countdown, 'remaining')).toBe('1');
      expect((await readFleetState(client, own)).conversations.settled).toEqual({ complete: 0, partial: 0 });
      settler.finished('update_crm', id, true);
      await settler.flush();
      expect((await readFleetState(client, own)).conversations.settled).toEqual({ complete: 1, partial: 0 });
      expect(await client.exists(countdown)).toBe(0);
    } finally {
      await ownProducer.close();
      await removePrefix(client, own);
    }
  });

  it('counts a task the expiry sweeper dead-letters, so its conversation settles partial', async () => {
    const own = uniquePrefix('conversation-sweep');
    const started = Date.now();
    // Five hours behind: the CRM update (4 h) is accepted and has expired by now; the ticket update (24 h) has not.
    const late = createProducer({ redis: TEST_REDIS, prefix: own, clock: () => Date.now() - 5 * 3_600_000 });
    const settler = new ConversationSettler(client, own, { flushMs: 10 });
    try {
      const id = 'cm-swept';
      await late.conversationEnded(resolvedOutcome(id, started - 5 * 3_600_000));
      const result = await sweepExpiredJobs(client, { prefix: own });
      expect(result.expired.update_crm).toBe(1);
      const countdown = typeKeys(own, 'update_crm').settlePrefix + encodeKeyPart(id);
      expect(await client.hmget(countdown, 'remaining', 'partial')).toEqual(['1', '1']);
      // The ticket update is delivered: the follow-up settles, partial.
      settler.finished('update_crm', id, true);
      await settler.flush();
      expect((await readFleetState(client, own)).conversations.settled).toEqual({ complete: 0, partial: 1 });
    } finally {
      await late.close();
      await removePrefix(client, own);
    }
  });
});
