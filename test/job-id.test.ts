import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  asciiKey,
  bookingTaskKey,
  conversationTaskKey,
  decodeKeyPart,
  idempotencyKeyOf,
  jobIdFor,
} from '../src/tasks/job-id.js';

describe('job ids from idempotency keys', () => {
  it('never contain ":" and never look like integers', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }), (conversationId) => {
        const jobId = jobIdFor(conversationTaskKey(conversationId, 'send_email'));
        expect(jobId).not.toContain(':');
        expect(String(Number.parseInt(jobId, 10))).not.toBe(jobId);
      }),
      { numRuns: 2_000 },
    );
  });

  it('are injective: different keys never share a job id, and the key is recovered', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 60 }),
        fc.string({ unit: 'binary', maxLength: 60 }),
        (a, b) => {
          const ka = conversationTaskKey(a, 'update_crm');
          const kb = conversationTaskKey(b, 'update_crm');
          expect(idempotencyKeyOf(jobIdFor(ka))).toBe(ka);
          if (ka !== kb) expect(jobIdFor(ka)).not.toBe(jobIdFor(kb));
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('keep apart pairs that collide under naive escaping', () => {
    const pairs: [string, string][] = [
      ['a:b', 'a_b'],
      ['a:b', 'a%3Ab'],
      ['a%3Ab', 'a%253Ab'],
      ['a::b', 'a%3A:b'],
      ['x:', 'x%3A'],
      ['%', '%25'],
      ['a b', 'a+b'],
      ['a/b', 'a%2Fb'],
      ['ü', 'u\u0308'],
    ];
    for (const [a, b] of pairs) {
      expect(jobIdFor(conversationTaskKey(a, 'send_email'))).not.toBe(jobIdFor(conversationTaskKey(b, 'send_email')));
    }
    expect(decodeKeyPart('a%253Ab')).toBe('a%3Ab');
  });

  it('name the booking and the appointment time for reminders', () => {
    const at = Date.parse('2026-12-01T09:30:00+01:00');
    expect(bookingTaskKey('bk:1', at, 'schedule_reminder')).toBe(
      'booking:bk:1@2026-12-01T08:30:00.000Z:schedule_reminder',
    );
    expect(bookingTaskKey('bk', at, 'schedule_reminder')).not.toBe(
      bookingTaskKey('bk', at + 60_000, 'schedule_reminder'),
    );
  });

  it('travel in HTTP headers as injective printable ASCII', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 80 }),
        fc.string({ unit: 'grapheme', maxLength: 80 }),
        (a, b) => {
          const ascii = asciiKey(a);
          expect(ascii).toMatch(/^[\x21-\x7e]*$/);
          expect(decodeURIComponent(ascii)).toBe(a);
          if (a !== b) expect(asciiKey(b)).not.toBe(ascii);
        },
      ),
      { numRuns: 2_000 },
    );
    expect(asciiKey('call 7:send_email')).toBe('call%207:send_email');
    expect(asciiKey('Ω')).toBe('%CE%A9');
  });
});
