import { describe, expect, it, vi } from 'vitest';
import { parseConversationOutcome } from '../src/contract/conversation-outcome.js';
import { planOutcome } from '../src/tasks/plan.js';
import { resolveTaskConfigs } from '../src/tasks/catalog.js';
import { ValidationError } from '../src/contract/validation-error.js';
import { bookedOutcome } from './helpers/outcomes.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const now = Date.parse('2026-11-26T12:00:00Z');
const endedAt = now - MIN;
const defaults = resolveTaskConfigs();
const plan = (input: unknown, configs = defaults, at = now) =>
  planOutcome(parseConversationOutcome(input), configs, at);
const base = (outcome: string, extra: Record<string, unknown> = {}) => ({
  conversationId: 'conv-1',
  endedAt: new Date(endedAt).toISOString(),
  outcome,
  customer: { id: 'cus', email: 'ada@example.com', phone: '+14155550100' },
  ...extra,
});
const booking = { id: 'bk-1', startsAt: new Date(now + 3 * 24 * HOUR).toISOString() };
const callback = { reason: 'call me', priority: 'high' };

describe('outcome -> plan (task catalog defaults)', () => {
  it('creates the table of tasks per outcome', () => {
    const types = (input: unknown) => plan(input).tasks.map((task) => task.type);
    expect(types(base('booked', { booking, surveyOptIn: true }))).toEqual([
      'send_email',
      'update_crm',
      'schedule_reminder',
      'follow_up_survey',
    ]);
    expect(types(base('rescheduled', { booking }))).toEqual(['send_email', 'update_crm', 'schedule_reminder']);
    expect(types(base('cancelled', { booking }))).toEqual(['send_email', 'update_crm']);
    expect(types(base('resolved', { ticket: { id: 'T' }, surveyOptIn: true }))).toEqual([
      'update_crm',
      'update_ticket',
      'follow_up_survey',
    ]);
    expect(types(base('callback_requested', { callback }))).toEqual(['update_crm', 'route_callback']);
    expect(types(base('escalated', { callback, ticket: { id: 'T' } }))).toEqual([
      'update_crm',
      'update_ticket',
      'route_callback',
    ]);
    expect(types(base('no_action'))).toEqual(['update_crm']);
    // no e-mail address, no e-mail; no opt-in, no survey
    expect(types({ ...base('booked', { booking }), customer: { id: 'cus' } })).toEqual([
      'update_crm',
      'schedule_reminder',
    ]);
  });

  it('computes run and expiry times from the defaults', () => {
    const tasks = Object.fromEntries(
      plan(base('booked', { booking, surveyOptIn: true })).tasks.map((task) => [task.type, task]),
    );
    const startsAt = Date.parse(booking.startsAt);
    expect([tasks.send_email!.runAt, tasks.send_email!.expiresAt]).toEqual([now, endedAt + 30 * MIN]);
    expect([tasks.update_crm!.runAt, tasks.update_crm!.expiresAt]).toEqual([now, endedAt + 4 * HOUR]);
    expect([tasks.schedule_reminder!.runAt, tasks.schedule_reminder!.expiresAt]).toEqual([
      startsAt - 24 * HOUR,
      startsAt - 2 * HOUR,
    ]);
    expect([tasks.follow_up_survey!.runAt, tasks.follow_up_survey!.expiresAt]).toEqual([
      endedAt + 2 * HOUR,
      endedAt + 48 * HOUR,
    ]);
    const ticket = plan(base('resolved', { ticket: { id: 'T' } })).tasks.find((task) => task.type === 'update_ticket')!;
    expect(ticket.expiresAt).toBe(endedAt + 24 * HOUR);
    const cb = plan(base('callback_requested', { callback })).tasks.find((task) => task.type === 'route_callback')!;
    expect(cb.expiresAt).toBe(endedAt + HOUR);
    const notAfter = new Date(now + 5 * HOUR).toISOString();
    const cb2 = plan(base('callback_requested', { callback: { ...callback, notAfter } })).tasks.find(
      (task) => task.type === 'route_callback',
    )!;
    expect(cb2.expiresAt).toBe(Date.parse(notAfter));
  });

  it('runs a reminder at once when its lead time has passed, and skips one that would already be expired', () => {
    const soon = { id: 'bk-2', startsAt: new Date(now + 5 * HOUR).toISOString() };
    const reminder = plan(base('booked', { booking: soon })).tasks.find((task) => task.type === 'schedule_reminder')!;
    expect(reminder.runAt).toBe(now);
    const tooLate = { id: 'bk-3', startsAt: new Date(now + 90 * MIN).toISOString() };
    const skipped = plan(base('booked', { booking: tooLate }));
    expect(skipped.tasks.map((task) => task.type)).not.toContain('schedule_reminder');
    expect(skipped.skipped).toEqual([{ type: 'schedule_reminder', reason: 'expired' }]);
    // the booking still moves forward: the previous reminder must go
    expect(skipped.scopeChanges).toEqual([
      expect.objectContaining({
        type: 'schedule_reminder',
        scope: { id: 'bk-3', action: 'replace', version: endedAt },
      }),
    ]);
  });

  it('plans an already expired task for the dead-letter queue instead of dropping it', () => {
    const late = plan({ ...base('booked', { booking }), endedAt: new Date(now - 45 * MIN).toISOString() });
    const email = late.tasks.find((task) => task.type === 'send_email')!;
    expect(email.expired).toBe(true);
    expect(late.tasks.find((task) => task.type === 'update_crm')!.expired).toBe(false);
  });

  it('uses conversationId:type as the key, and the booking and time for reminders', () => {
    const tasks = plan(base('booked', { booking })).tasks;
    expect(tasks.find((task) => task.type === 'update_crm')!.idempotencyKey).toBe('conv-1:update_crm');
    expect(tasks.find((task) => task.type === 'schedule_reminder')!.idempotencyKey).toBe(
      `booking:bk-1@${new Date(booking.startsAt).toISOString()}:schedule_reminder`,
    );
  });

  it('lists a switched-off type as skipped, and applies per-type overrides', () => {
    const configs = resolveTaskConfigs({
      send_email: { enabled: false },
      update_crm: { attempts: 9, settings: { expiresAfter: HOUR } },
    });
    const result = plan(base('booked', { booking }), configs);
    expect(result.skipped).toEqual([{ type: 'send_email', reason: 'disabled' }]);
    const crm = result.tasks.find((task) => task.type === 'update_crm')!;
    expect([crm.attempts, crm.expiresAt]).toEqual([9, endedAt + HOUR]);
  });

  it('rejects overrides that name unknown types or settings, or bad values', () => {
    expect(() => resolveTaskConfigs({ send_emial: {} } as never)).toThrow(/tasks\.send_emial: unknown task type/);
    expect(() => resolveTaskConfigs({ send_email: { settings: { expiresAftr: 1 } } })).toThrow(
      /tasks\.send_email\.settings\.expiresAftr: unknown setting/,
    );
    expect(() => resolveTaskConfigs({ update_crm: { attempts: 0 } })).toThrow(ValidationError);
  });

  it('depends on the outcome and the moment it is given, not on the system clock', () => {
    const outcome = parseConversationOutcome(bookedOutcome('same', now));
    const copy = parseConversationOutcome(JSON.parse(JSON.stringify(bookedOutcome('same', now))));
    vi.useFakeTimers({ toFake: ['Date'] });
    let lastWeek: ReturnType<typeof planOutcome>;
    let nextYear: ReturnType<typeof planOutcome>;
    try {
      vi.setSystemTime(now - 7 * 24 * HOUR);
      lastWeek = planOutcome(outcome, defaults, now);
      vi.setSystemTime(now + 365 * 24 * HOUR);
      nextYear = planOutcome(copy, defaults, now);
    } finally {
      vi.useRealTimers();
    }
    expect(nextYear).toEqual(lastWeek);
    expect(lastWeek.tasks.find((task) => task.type === 'send_email')!.runAt).toBe(now);
    // the moment it is given does count: a task due at once runs at that moment
    const later = planOutcome(outcome, defaults, now + MIN);
    expect(later.tasks.find((task) => task.type === 'send_email')!.runAt).toBe(now + MIN);
  });
});
