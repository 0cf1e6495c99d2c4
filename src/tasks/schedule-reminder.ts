/**
 * schedule_reminder: a reminder of the appointment, sent a day before it (or at once when
 * that moment has passed), worthless from 2 hours before it.
 *
 * A reminder belongs to the booking, not to the conversation that created it. Its
 * idempotency key names the booking and the appointment time, so a reminder for a new
 * time is a new delivery and a repeated outcome is not. `rescheduled` replaces the
 * booking's pending reminder (the old one is removed, the new one runs at the new time),
 * `cancelled` removes it, whichever conversation these come from. A reminder that would
 * already be expired is not enqueued: the plan lists it as skipped.
 */
import { z } from 'zod';
import { bookingSchema, customerSchema } from '../contract/conversation-outcome.js';
import { bookingTaskKey } from './job-id.js';
import { fromIso, HOUR } from '../contract/time.js';
import { composeEmail, composeSms, describeAppointment, smsGreeting } from './message.js';
import { defineTask, deliverPayload } from './task-definition.js';

const payloadSchema = z.strictObject({ customer: customerSchema, booking: bookingSchema });

export const scheduleReminder = defineTask({
  type: 'schedule_reminder',
  description: 'Appointment reminder, owned by the booking',
  webhookUrlVariable: 'REMINDERS_WEBHOOK_URL',
  defaults: { attempts: 3, settings: { leadTime: 24 * HOUR, expiresBefore: 2 * HOUR } },
  settingDescriptions: {
    leadTime: 'runs this long before the appointment (at once when that has passed)',
    expiresBefore: 'expires this long before the appointment',
  },
  skipWhenExpired: true,
  scope: {
    id: (outcome) => outcome.booking?.id,
    action: (outcome) =>
      outcome.outcome === 'booked' || outcome.outcome === 'rescheduled'
        ? 'replace'
        : outcome.outcome === 'cancelled'
          ? 'cancel'
          : undefined,
  },
  payloadSchema,
  appliesTo: (outcome) => (outcome.outcome === 'booked' || outcome.outcome === 'rescheduled') && !!outcome.booking,
  idempotencyKey: (outcome) =>
    bookingTaskKey(outcome.booking!.id, fromIso(outcome.booking!.startsAt), 'schedule_reminder'),
  buildPayload: (outcome) => ({ customer: outcome.customer, booking: outcome.booking! }),
  runAt: (outcome, settings, now) => Math.max(now, fromIso(outcome.booking!.startsAt) - settings.leadTime),
  expiresAt: (outcome, settings) => fromIso(outcome.booking!.startsAt) - settings.expiresBefore,
  messages: {
    email: ({ customer, booking }) => {
      if (!customer.email) return undefined;
      const { what, when, where } = describeAppointment(booking, customer.locale);
      return composeEmail(customer.email, `Reminder: ${what}`, customer.name, [
        `This is a reminder of ${what} on ${when}${where}.`,
        `Booking reference: ${booking.id}.`,
      ]);
    },
    sms: ({ customer, booking }) => {
      if (!customer.phone) return undefined;
      const { what, when, where } = describeAppointment(booking, customer.locale);
      return composeSms(
        customer.phone,
        `${smsGreeting(customer.name)}reminder: ${what} on ${when}${where}. Ref ${booking.id}.`,
      );
    },
  },
  process: deliverPayload,
});
