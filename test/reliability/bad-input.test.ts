/**
 * Scenario 6, bad input: at least 10,000 malformed outcomes generated with fast-check
 * (wrong types, missing fields, oversized strings, invalid dates, hostile strings, unknown
 * fields, values that are not objects at all): every one is rejected with field errors,
 * none is enqueued, and the producer throws nothing but its validation error. Malformed
 * job data written straight into a queue is dead-lettered as `invalid`, and the worker
 * keeps running.
 */
import { Queue } from 'bullmq';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createProducer } from '../../src/producer/producer.js';
import { DeadLetterQueue } from '../../src/redis/dead-letter-queue.js';
import { queueName } from '../../src/redis/keys.js';
import { conversationStatus } from '../../src/ops/status.js';
import { OutcomeValidationError } from '../../src/contract/validation-error.js';
import { keysWithPrefix, redis, REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { waitUntil } from '../helpers/wait.js';
import { report, scale, startFleet, type Fleet } from './harness.js';

const client = redis();
const prefixes: string[] = [];
let fleet: Fleet | undefined;

afterAll(async () => {
  await fleet?.stop();
  for (const prefix of prefixes) await removePrefix(client, prefix);
  client.disconnect();
});

const valid = () => ({
  conversationId: 'conv-1',
  endedAt: '2026-11-26T10:00:00+01:00',
  outcome: 'booked',
  customer: { id: 'cus-1', name: 'Ada', email: 'ada@example.com', phone: '+14155550100', locale: 'en-GB' },
  booking: { id: 'bk-1', startsAt: '2026-11-30T09:30:00+01:00', address: '1 Main St', service: 'Check-up' },
  ticket: { id: 'T-1', status: 'open' },
  callback: { reason: 'call', priority: 'high', notAfter: '2026-11-26T18:00:00Z' },
  sentiment: 'positive',
  summary: 'ok',
  surveyOptIn: true,
  metadata: { agent: 'bot' },
});

type Outcome = Record<string, unknown>;
const paths = [
  ['conversationId'],
  ['endedAt'],
  ['outcome'],
  ['customer'],
  ['customer', 'id'],
  ['customer', 'name'],
  ['customer', 'email'],
  ['customer', 'phone'],
  ['customer', 'locale'],
  ['booking'],
  ['booking', 'id'],
  ['booking', 'startsAt'],
  ['ticket'],
  ['ticket', 'id'],
  ['callback'],
  ['callback', 'reason'],
  ['callback', 'priority'],
  ['callback', 'notAfter'],
  ['sentiment'],
  ['summary'],
  ['surveyOptIn'],
  ['metadata'],
];
const setAt = (target: Outcome, path: readonly string[], value: unknown, remove = false) => {
  let node = target;
  for (const part of path.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) return;
    node = node[part] as Outcome;
  }
  if (remove) delete node[path.at(-1)!];
  else node[path.at(-1)!] = value;
};

const hostileString = fc.oneof(
  fc.constant('a\u0000b'),
  fc.constant('\u0007bell'),
  fc.constant('line\nbreak'),
  fc.constant('\ud800'),
  fc.constant(''),
  fc.constant('<script>alert(1)</script>\u0000'),
  fc.constant('\u001b[31mred'),
);
/** Strings one character over each field's limit (counted in code points). */
const oversized = fc.constantFrom(
  (o: Outcome) => setAt(o, ['conversationId'], '😀'.repeat(201)),
  (o: Outcome) => setAt(o, ['customer', 'id'], 'x'.repeat(201)),
  (o: Outcome) => setAt(o, ['customer', 'name'], 'n'.repeat(201)),
  (o: Outcome) => setAt(o, ['booking', 'id'], 'b'.repeat(201)),
  (o: Outcome) => setAt(o, ['booking', 'address'], 'a'.repeat(501)),
  (o: Outcome) => setAt(o, ['callback', 'reason'], 'r'.repeat(1_001)),
  (o: Outcome) => setAt(o, ['summary'], 's'.repeat(4_001)),
  (o: Outcome) => setAt(o, ['metadata'], { blob: 'm'.repeat(9_000) }),
);
const OBJECT_FIELDS = new Set(['customer', 'booking', 'ticket', 'callback']);
/** A value of the wrong type for the field at `path` (never one its schema accepts). */
const wrongTypeFor = (path: readonly string[]) => {
  const last = path.at(-1)!;
  if (path.length === 1 && OBJECT_FIELDS.has(last))
    return fc.oneof(
      fc.integer(),
      fc.string(),
      fc.constant(null),
      fc.array(fc.integer(), { maxLength: 2 }),
      fc.constant({}),
    );
  if (last === 'surveyOptIn') return fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.constant('true'));
  if (last === 'metadata')
    return fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }));
  return fc.oneof(
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer(), { maxLength: 2 }),
    fc.constant({}),
    fc.double(),
  );
};
const badDate = fc.oneof(
  fc.constant('2026-11-26T10:00:00'),
  fc.constant('2026-13-01T00:00:00Z'),
  fc.constant('yesterday'),
  fc.constant(''),
  fc.constant('2026-02-30T10:00:00Z'),
  fc.constant('26/11/2026 10:00'),
  fc.integer().map(String),
  fc.constant('2026-11-26T25:00:00+01:00'),
);

/** One or more faults applied to a valid outcome; each alone makes it invalid. */
const mutation = fc.oneof(
  fc
    .constantFrom(
      ...paths.filter(
        (path) =>
          ['conversationId', 'endedAt', 'outcome', 'customer'].includes(path[0]!) &&
          path.length <= 2 &&
          !['name', 'email', 'phone', 'locale'].includes(path[1] ?? ''),
      ),
    )
    .map((path) => (o: Outcome) => setAt(o, path, undefined, true)),
  fc.constantFrom(...paths).chain((path) => wrongTypeFor(path).map((value) => (o: Outcome) => setAt(o, path, value))),
  fc
    .tuple(
      fc.constantFrom(['conversationId'], ['customer', 'id'], ['booking', 'id'], ['callback', 'reason']),
      hostileString,
    )
    .map(
      ([path, value]) =>
        (o: Outcome) =>
          setAt(o, path, value),
    ),
  fc.tuple(fc.constantFrom(['endedAt'], ['booking', 'startsAt'], ['callback', 'notAfter']), badDate).map(
    ([path, value]) =>
      (o: Outcome) =>
        setAt(o, path, value),
  ),
  oversized,
  fc.constantFrom(
    (o: Outcome) => setAt(o, ['customer', 'email'], 'not-an-email'),
    (o: Outcome) => setAt(o, ['customer', 'phone'], '0155 555 0100'),
    (o: Outcome) => setAt(o, ['customer', 'locale'], 'english please'),
    (o: Outcome) => setAt(o, ['outcome'], 'done'),
    (o: Outcome) => setAt(o, ['sentiment'], 'furious'),
    (o: Outcome) => setAt(o, ['callback', 'priority'], 'urgent'),
    (o: Outcome) => setAt(o, ['surprise'], true),
    (o: Outcome) => setAt(o, ['customer', 'emial'], 'typo@example.com'),
    (o: Outcome) => setAt(o, ['booking'], undefined, true),
    (o: Outcome) => {
      setAt(o, ['outcome'], 'escalated');
      setAt(o, ['callback'], undefined, true);
    },
    // an own "__proto__" key, as JSON.parse makes it (no prototype change): an unknown field
    (o: Outcome) =>
      Object.defineProperty(o, '__proto__', {
        value: { polluted: true },
        enumerable: true,
        configurable: true,
        writable: true,
      }),
    (o: Outcome) => setAt(o, ['metadata'], ['not', 'an', 'object']),
  ),
);
const malformed = fc.oneof(
  {
    weight: 9,
    arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }).map((mutations) => {
      const o = valid() as Outcome;
      for (const m of mutations) m(o);
      return o as unknown;
    }),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.constant(null),
      fc.integer(),
      fc.string(),
      fc.array(fc.anything(), { maxLength: 3 }),
      fc.constant(undefined),
    ),
  },
);

describe('reliability: bad input', () => {
  it('rejects every one of 10,000+ malformed outcomes with field errors, and enqueues none', async () => {
    const prefix = uniquePrefix('chaos-bad');
    prefixes.push(prefix);
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    const count = scale(10_000, 50_000);
    let rejected = 0;
    const otherErrors: string[] = [];
    await fc.assert(
      fc.asyncProperty(malformed, async (input) => {
        try {
          await producer.conversationEnded(input);
          otherErrors.push(`accepted: ${JSON.stringify(input).slice(0, 300)}`);
        } catch (error) {
          if (!(error instanceof OutcomeValidationError))
            otherErrors.push(`${(error as Error).name}: ${(error as Error).message}`);
          else {
            expect(error.issues.length).toBeGreaterThan(0);
            for (const issue of error.issues) expect(issue.path && issue.message).toBeTruthy();
            rejected += 1;
          }
        }
      }),
      { numRuns: count, seed: 42 },
    );
    await producer.close();
    expect(otherErrors.slice(0, 5)).toEqual([]);
    expect(rejected).toBe(count);
    expect(await keysWithPrefix(client, prefix)).toEqual([]);
    report(
      '6a. Bad input',
      undefined,
      { malformed: count, rejected },
      `6a. Bad input: ${count} malformed outcomes, ${rejected} rejected with field errors, 0 enqueued, 0 other exceptions`,
    );
  });

  it('dead-letters malformed job data written straight into a queue as invalid, and keeps working', async () => {
    const prefix = uniquePrefix('chaos-bad-jobs');
    prefixes.push(prefix);
    fleet = await startFleet({ prefix, workers: 1 });
    const queue = new Queue(queueName('update_crm'), { connection: client, prefix });
    const garbage: [string, unknown][] = [
      ['g1%3Aupdate_crm', 'a string, not an object'],
      ['g2%3Aupdate_crm', { type: 'update_crm' }],
      [
        'g3%3Aupdate_crm',
        {
          type: 'send_email',
          conversationId: 'g3',
          idempotencyKey: 'g3:send_email',
          createdAt: 1,
          runAt: 1,
          expiresAt: 9_999_999_999_999,
          payload: {},
        },
      ],
      [
        'g4%3Aupdate_crm',
        {
          type: 'update_crm',
          conversationId: 'g4',
          idempotencyKey: 'g4:update_crm',
          createdAt: 1,
          runAt: 1,
          expiresAt: 9_999_999_999_999,
          payload: { outcome: 'nope' },
        },
      ],
      ['g5%3Aupdate_crm', [1, 2, 3]],
      [
        'g6%3Aupdate_crm',
        {
          type: 'update_crm',
          conversationId: 'g6',
          idempotencyKey: 'g6:update_crm',
          createdAt: 'yesterday',
          runAt: null,
          expiresAt: 'soon',
          payload: null,
        },
      ],
    ];
    for (const [jobId, data] of garbage) await queue.add('update_crm', data as object, { jobId });
    await queue.close();
    const dlq = new DeadLetterQueue(client, prefix);
    await waitUntil(
      () => dlq.counts(['update_crm']),
      (counts) => counts.update_crm.invalid === garbage.length,
      'every malformed job in the dead-letter queue',
    );
    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    await producer.conversationEnded({
      conversationId: 'after',
      endedAt: new Date().toISOString(),
      outcome: 'no_action',
      customer: { id: 'c' },
    });
    await producer.close();
    await waitUntil(
      () => conversationStatus(client, prefix, 'after'),
      (entries) => entries[0]?.state === 'completed',
      'a valid job after the garbage',
    );
    expect(fleet.workers[0]!.process.exitCode).toBeNull();
    report(
      '6b. Malformed job data',
      undefined,
      {},
      `6b. Malformed job data: ${garbage.length} jobs written straight into a queue, ${garbage.length} dead-lettered as invalid, the worker kept running`,
    );
  });
});
