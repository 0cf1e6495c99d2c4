/**
 * send_email: the confirmation, reschedule notice or cancellation notice of a booking,
 * sent to the customer's e-mail address. Worthless once the customer has stopped
 * waiting for it: expires 30 minutes after the call by default.
 */
import { z } from 'zod';
import { BOOKING_OUTCOMES, bookingSchema, customerSchema } from '../contract/conversation-outcome.js';
import { fromIso, MINUTE } from '../contract/time.js';
import { conversationTaskKey } from './job-id.js';
import { composeEmail, describeAppointment } from './message.js';
import { defineTask, deliverPayload } from './task-definition.js';

export const EMAIL_KINDS = {
  booked: 'booking_confirmation',
  rescheduled: 'reschedule_notice',
  cancelled: 'cancellation_notice',
} as const;

const payloadSchema = z.strictObject({
  kind: z.enum(Object.values(EMAIL_KINDS) as [string, ...string[]]),
  customer: customerSchema.omit({ phone: true }).required({ email: true }),
  booking: bookingSchema,
});

export const sendEmail = defineTask({
  type: 'send_email',
  description: 'Booking confirmation, reschedule or cancellation notice by e-mail',
  webhookUrlVariable: 'EMAIL_WEBHOOK_URL',
  defaults: { attempts: 3, settings: { expiresAfter: 30 * MINUTE } },
  settingDescriptions: { expiresAfter: 'expires this long after the conversation ended' },
  payloadSchema,
  appliesTo: (outcome) => BOOKING_OUTCOMES.includes(outcome.outcome) && !!outcome.customer.email && !!outcome.booking,
  idempotencyKey: (outcome) => conversationTaskKey(outcome.conversationId, 'send_email'),
  buildPayload: (outcome) => ({
    kind: EMAIL_KINDS[outcome.outcome as keyof typeof EMAIL_KINDS],
    customer: {
      id: outcome.customer.id,
      email: outcome.customer.email!,
      ...(outcome.customer.name !== undefined && { name: outcome.customer.name }),
      ...(outcome.customer.locale !== undefined && { locale: outcome.customer.locale }),
    },
    booking: outcome.booking!,
  }),
  runAt: (_outcome, _settings, now) => now,
  expiresAt: (outcome, settings) => fromIso(outcome.endedAt) + settings.expiresAfter,
  messages: {
    email: ({ kind, customer, booking }) => {
      const { what, when, where } = describeAppointment(booking, customer.locale);
      switch (kind) {
        case 'booking_confirmation':
          return composeEmail(customer.email, `Booking confirmed: ${what}`, customer.name, [
            `Your booking is confirmed: ${what} on ${when}${where}.`,
            `Booking reference: ${booking.id}.`,
          ]);
        case 'reschedule_notice':
          return composeEmail(customer.email, `Booking moved: ${what}`, customer.name, [
            `Your booking has moved: ${what} is now on ${when}${where}.`,
            `Booking reference: ${booking.id}.`,
          ]);
        default:
          return composeEmail(customer.email, `Booking cancelled: ${what}`, customer.name, [
            `Your booking for ${what} on ${when} has been cancelled.`,
            `Booking reference: ${booking.id}.`,
          ]);
      }
    },
  },
  process: deliverPayload,
});
