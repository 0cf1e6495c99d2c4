/**
 * The producer and the worker validate through schemas compiled by zod (`z.compile`): a
 * generated function answers for valid data, and whatever it rejects is parsed again by
 * the original schema for the issues. A compiled schema that accepted what the original
 * rejects (or returned other data) would let malformed work through, so this checks, for
 * generated outcomes, job envelopes and every task type's payloads, each one also broken
 * in a generated way (a field removed, replaced by any value, an unknown field added),
 * that the compiled and the original schema give the same answer.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  compiledOutcomeSchema,
  conversationOutcomeSchema,
  parseConversationOutcome,
} from '../src/contract/conversation-outcome.js';
import { planOutcome } from '../src/tasks/plan.js';
import { jobEnvelopeSchema } from '../src/tasks/job-data.js';
import { allTaskDefinitions, resolveTaskConfigs } from '../src/tasks/catalog.js';
import { outcomeArbitrary } from './helpers/outcome-arbitrary.js';

type Path = (string | number)[];
type Mutation = { at: number; kind: 'delete' | 'replace' | 'add'; value: unknown; key: string };

/** Every path in a JSON-like value, the root included. */
function pathsOf(value: unknown, path: Path = []): Path[] {
  const out: Path[] = [path];
  if (Array.isArray(value)) for (const [index, item] of value.entries()) out.push(...pathsOf(item, [...path, index]));
  else if (value && typeof value === 'object')
    for (const [key, item] of Object.entries(value)) out.push(...pathsOf(item, [...path, key]));
  return out;
}

/** A copy of `value` with one place broken as the mutation says. */
function mutate(value: unknown, mutation: Mutation): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  const paths = pathsOf(copy);
  const path = paths[mutation.at % paths.length]!;
  if (path.length === 0) return mutation.kind === 'replace' ? mutation.value : copy;
  const parent = path
    .slice(0, -1)
    .reduce<Record<string | number, unknown>>(
      (node, key) => node[key] as Record<string | number, unknown>,
      copy as Record<string | number, unknown>,
    );
  const last = path[path.length - 1]!;
  if (mutation.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else if (mutation.kind === 'replace') {
    parent[last] = mutation.value;
  } else {
    const target = parent[last];
    if (target && typeof target === 'object' && !Array.isArray(target))
      (target as Record<string, unknown>)[mutation.key] = mutation.value;
    else parent[mutation.key] = mutation.value;
  }
  return copy;
}

const oddStrings = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'x'.repeat(4_001),
  '2026-11-26T10:00:00',
  '2026-11-26',
  'not-an-email',
  'ada@',
  '+0123',
  '12345',
  'en_US',
  'booked ',
  'low',
  'toString',
  '__proto__',
  '\uD800',
);
const anyValue = fc.oneof(
  fc.anything({
    withBigInt: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withTypedArray: true,
    withSparseArray: true,
    withBoxedValues: true,
  }),
  oddStrings,
  fc.constantFrom(
    undefined,
    null,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -0,
    1e21,
    2 ** 53,
    () => 1,
    Symbol('s'),
    new Date(Number.NaN),
  ),
);
const mutationArbitrary = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('delete', 'replace', 'add'),
  value: anyValue,
  key: fc.oneof(fc.constantFrom('unknown', 'emial', 'booking', 'metadata'), fc.string({ maxLength: 8 })),
}) as fc.Arbitrary<Mutation>;

/** What a schema answers: success and data, failure and issues, or the exception. */
function answer(schema: z.ZodType, input: unknown) {
  try {
    const result = schema.safeParse(input);
    return result.success ? { success: true, data: result.data } : { success: false, issues: result.error.issues };
  } catch (error) {
    return { threw: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

const now = Date.now();
const runs = 400;

describe('compiled schemas answer as the original schemas do', () => {
  it('are compiled (a schema zod cannot compile is returned as it is)', () => {
    expect(compiledOutcomeSchema).not.toBe(conversationOutcomeSchema);
    for (const definition of allTaskDefinitions()) {
      expect(z.compile(definition.payloadSchema), definition.type).not.toBe(definition.payloadSchema);
    }
    expect(z.compile(jobEnvelopeSchema)).not.toBe(jobEnvelopeSchema);
  });

  it('outcomes, valid and broken', () => {
    let rejected = 0;
    fc.assert(
      fc.property(outcomeArbitrary(now), fc.option(mutationArbitrary, { freq: 4 }), (outcome, mutation) => {
        const input = mutation ? mutate(outcome, mutation) : outcome;
        const compiled = answer(compiledOutcomeSchema, input);
        expect(compiled).toEqual(answer(conversationOutcomeSchema, input));
        if (!mutation) expect(compiled).toMatchObject({ success: true });
        if (compiled.success === false) rejected += 1;
      }),
      { numRuns: runs },
    );
    // many broken outcomes are invalid ones, so both paths of the compiled schema ran
    expect(rejected).toBeGreaterThan(runs / 4);
  });

  it('job envelopes and every task type’s payloads, valid and broken', () => {
    const configs = resolveTaskConfigs();
    const compiledEnvelope = z.compile(jobEnvelopeSchema);
    const compiledPayloads = new Map(
      allTaskDefinitions().map((definition) => [definition.type, z.compile(definition.payloadSchema)]),
    );
    let payloadsChecked = 0;
    fc.assert(
      fc.property(outcomeArbitrary(now), fc.option(mutationArbitrary, { freq: 4 }), (outcome, mutation) => {
        for (const task of planOutcome(parseConversationOutcome(outcome), configs, now).tasks) {
          const data = mutation ? mutate(task.data, mutation) : task.data;
          expect(answer(compiledEnvelope, data)).toEqual(answer(jobEnvelopeSchema, data));
          const definition = allTaskDefinitions().find((candidate) => candidate.type === task.type)!;
          const payload = mutation ? mutate(task.data.payload, mutation) : task.data.payload;
          const compiled = answer(compiledPayloads.get(task.type)!, payload);
          expect(compiled).toEqual(answer(definition.payloadSchema, payload));
          if (!mutation) expect(compiled, task.type).toMatchObject({ success: true });
          payloadsChecked += 1;
        }
      }),
      { numRuns: runs },
    );
    expect(payloadsChecked).toBeGreaterThan(runs);
  });
});
