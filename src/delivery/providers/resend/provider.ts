/** Resend in the provider registry: e-mails, for types that have an e-mail message. */
import { httpUrlVariable, patternVariable, textVariable } from '../../../contract/variables.js';
import type { DeliveryProvider } from '../../provider.js';
import { rateLimitVariable, type RateLimit } from '../../rate-limit.js';
import { createResendDelivery, RESEND_PROVIDER } from './resend.js';

const SENDER = (text: string) => /^[^<>@\s]+@[^<>@\s]+$/.test(text) || /^[^<>]*<[^<>@\s]+@[^<>@\s]+>$/.test(text);

export const resendProvider: DeliveryProvider = {
  name: RESEND_PROVIDER,
  sends: 'email',
  description: 'e-mail through Resend',
  variables: () => [
    {
      name: 'RESEND_API_KEY',
      schema: textVariable,
      default: '(none)',
      description: 'Resend API key; when set, e-mails go through Resend (see CHANNEL_<TYPE>)',
    },
    {
      name: 'RESEND_BASE_URL',
      schema: httpUrlVariable,
      default: "(the SDK's)",
      description: 'Resend API base URL (a sandbox or a regional endpoint)',
    },
    {
      name: 'EMAIL_FROM',
      schema: patternVariable(SENDER, 'a sender such as bookings@acme.example or "Acme <bookings@acme.example>"'),
      default: '(none)',
      description: 'sender of e-mails sent through Resend; required with RESEND_API_KEY',
    },
    {
      name: 'RESEND_RATE_LIMIT',
      schema: rateLimitVariable,
      default: '(none)',
      description:
        'fleet-wide limit of requests to Resend, e.g. 2/s (Resend states its own in headers; the lower governs)',
    },
  ],
  destination: () => RESEND_PROVIDER,
  rateLimit: (values) => values.RESEND_RATE_LIMIT as RateLimit | undefined,
  configured: (values) => !!values.RESEND_API_KEY,
  requires: (values) => [
    { variable: 'RESEND_API_KEY', set: !!values.RESEND_API_KEY },
    { variable: 'EMAIL_FROM', set: !!values.EMAIL_FROM },
  ],
  create: ({ values, timeoutMs, observe }) =>
    createResendDelivery({
      apiKey: values.RESEND_API_KEY as string,
      from: values.EMAIL_FROM as string,
      timeoutMs,
      ...(typeof values.RESEND_BASE_URL === 'string' && { baseUrl: values.RESEND_BASE_URL }),
      ...(observe && { observe }),
    }),
};
