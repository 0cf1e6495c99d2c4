import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { conversationOutcomeJsonSchema, parseConversationOutcome } from '../src/contract/conversation-outcome.js';
import { OutcomeValidationError } from '../src/contract/validation-error.js';
import { bookedOutcome } from './helpers/outcomes.js';

function issuesOf(input: unknown) {
  try {
    parseConversationOutcome(input);
  } catch (error) {
    expect(error).toBeInstanceOf(OutcomeValidationError);
    return (error as OutcomeValidationError).issues;
  }
  throw new Error('expected the outcome to be rejected');
}

describe('conversation outcome schema', () => {
  it('accepts every example outcome, one per outcome kind', () => {
    const files = readdirSync(new URL('../examples/', import.meta.url)).filter((file) => file.endsWith('.json'));
    const kinds = files.map(
      (file) =>
        parseConversationOutcome(JSON.parse(readFileSync(new URL(`../examples/${file}`, import.meta.url), 'utf8')))
          .outcome,
    );
    expect(new Set(kinds)).toEqual(
      new Set(['booked', 'rescheduled', 'cancelled', 'resolved', 'callback_requested', 'escalated', 'no_action']),
    );
  });

  it('accepts conversation ids with :, /, spaces and non-ASCII letters, up to 200 characters', () => {
    for (const conversationId of ['a:b', 'x/y/z', 'with spaces', 'Überweisung-Ω-東京', '🙂'.repeat(200)]) {
      expect(parseConversationOutcome(bookedOutcome(conversationId)).conversationId).toBe(conversationId);
    }
  });

  it('lists every offending field with what was expected', () => {
    const issues = issuesOf({
      conversationId: '',
      endedAt: '26/11/2026',
      outcome: 'done',
      customer: { id: 'c', email: 'not-an-email', phone: '0155 555', emial: 'typo@example.com' },
      summary: 'x'.repeat(4_001),
      surprise: true,
    });
    const byPath = Object.fromEntries(issues.map((issue) => [issue.path, issue.message]));
    expect(byPath.conversationId).toMatch(/at least 1 character/);
    expect(byPath.endedAt).toMatch(/ISO-8601 date-time with offset/);
    expect(byPath.outcome).toMatch(/expected one of booked, rescheduled/);
    expect(byPath['customer.email']).toMatch(/e-mail address/);
    expect(byPath['customer.phone']).toMatch(/E\.164/);
    expect(byPath['customer.emial']).toMatch(/unknown field/);
    expect(byPath.summary).toMatch(/at most 4000 characters/);
    expect(byPath.surprise).toMatch(/unknown field/);
  });

  it('says which required field is missing', () => {
    const issues = issuesOf({ endedAt: '2026-11-26T10:00:00Z', outcome: 'no_action' });
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: 'conversationId', message: expect.stringMatching(/^required: /) },
        { path: 'customer', message: expect.stringMatching(/^required: /) },
      ]),
    );
  });

  it('requires a booking for booked, rescheduled and cancelled, and a callback for callback_requested and escalated', () => {
    for (const outcome of ['booked', 'rescheduled', 'cancelled']) {
      const issues = issuesOf({ conversationId: 'c', endedAt: '2026-11-26T10:00:00Z', outcome, customer: { id: 'x' } });
      expect(issues).toEqual([{ path: 'booking', message: `expected a booking: required when outcome is ${outcome}` }]);
    }
    for (const outcome of ['callback_requested', 'escalated']) {
      const issues = issuesOf({ conversationId: 'c', endedAt: '2026-11-26T10:00:00Z', outcome, customer: { id: 'x' } });
      expect(issues).toEqual([
        { path: 'callback', message: `expected a callback: required when outcome is ${outcome}` },
      ]);
    }
  });

  it('rejects date-times without an offset, control characters and metadata over 8 KB', () => {
    const base = bookedOutcome('c');
    expect(issuesOf({ ...base, endedAt: '2026-11-26T10:00:00' })[0]!.path).toBe('endedAt');
    expect(issuesOf({ ...base, conversationId: 'a\u0000b' })[0]!.message).toMatch(/printable/);
    expect(issuesOf({ ...base, metadata: { blob: 'x'.repeat(8_200) } })[0]).toEqual({
      path: 'metadata',
      message: 'expected a JSON object of at most 8192 bytes when serialised',
    });
    expect(issuesOf({ ...base, metadata: ['not', 'an', 'object'] })[0]!.path).toBe('metadata');
  });

  it('refuses a metadata key __proto__, naming it, instead of dropping its value', () => {
    const base = bookedOutcome('c');
    // As JSON.parse builds it from a request body: an own key named __proto__.
    const metadata = JSON.parse('{"__proto__": "kept?", "crmId": "42"}') as Record<string, unknown>;
    expect(issuesOf({ ...base, metadata })).toEqual([
      {
        path: 'metadata.__proto__',
        message: 'expected another key: __proto__ cannot be kept (JavaScript objects treat it as their prototype)',
      },
    ]);
    expect(parseConversationOutcome({ ...base, metadata: { crmId: '42' } }).metadata).toEqual({ crmId: '42' });
  });

  it('names the first metadata value that is not JSON', () => {
    const base = bookedOutcome('c');
    const deep: Record<string, unknown> = {};
    let node = deep;
    for (let depth = 0; depth < 100; depth += 1) node = node.next = {};
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: [unknown, string][] = [
      [{ tags: ['a', new Date(0)] }, 'metadata.tags[1]'],
      [{ score: Number.NaN }, 'metadata.score'],
      [{ nested: { fn: () => 1 } }, 'metadata.nested.fn'],
      [{ ok: 1, missing: undefined }, 'metadata.missing'],
      [{ big: 10n }, 'metadata.big'],
    ];
    for (const [metadata, path] of cases) {
      expect(issuesOf({ ...base, metadata })).toEqual([{ path, message: 'expected a JSON value' }]);
    }
    // nesting deeper than 64 levels, or a cycle, is refused where it goes too deep
    expect(issuesOf({ ...base, metadata: deep })[0]!.path).toMatch(/^metadata(\.next){64}$/);
    expect(issuesOf({ ...base, metadata: cyclic })[0]!.path).toMatch(/^metadata(\.self){64}$/);
  });

  it('turns hostile input into a validation error, never another exception', () => {
    const hostile = [
      null,
      42,
      'outcome',
      [],
      Object.create(null),
      new Proxy(
        {},
        {
          get: () => {
            throw new Error('trap');
          },
          ownKeys: () => {
            throw new Error('trap');
          },
        },
      ),
      {
        get conversationId() {
          throw new Error('getter');
        },
      },
      { ...bookedOutcome('c'), metadata: { big: 10n } },
    ];
    for (const input of hostile) expect(() => parseConversationOutcome(input)).toThrow(OutcomeValidationError);
  });

  it('matches the committed JSON Schema (run `npm run schema` after changing the zod schema)', () => {
    const committed = JSON.parse(
      readFileSync(new URL('../schema/conversation-outcome.schema.json', import.meta.url), 'utf8'),
    );
    expect(conversationOutcomeJsonSchema()).toEqual(committed);
  });
});
