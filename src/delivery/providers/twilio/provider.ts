/** Twilio in the provider registry: SMS, for types that have an SMS message. */
import { E164 } from '../../../contract/conversation-outcome.js';
import { httpUrlVariable, patternVariable, textVariable } from '../../../contract/variables.js';
import type { DeliveryProvider } from '../../provider.js';
import { rateLimitVariable, type RateLimit } from '../../rate-limit.js';
import { createTwilioDelivery, TWILIO_PROVIDER } from './twilio.js';

const VARIABLES = ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM'] as const;

export const twilioProvider: DeliveryProvider = {
  name: TWILIO_PROVIDER,
  sends: 'sms',
  description: 'SMS through Twilio',
  variables: () => [
    {
      name: 'TWILIO_ACCOUNT_SID',
      schema: patternVariable(
        (text) => /^AC[0-9a-fA-F]{32}$/.test(text),
        'a Twilio account SID: AC followed by 32 hex digits',
      ),
      default: '(none)',
      description: 'Twilio account SID (AC...); with the token and sender, SMS go through Twilio',
    },
    { name: 'TWILIO_AUTH_TOKEN', schema: textVariable, default: '(none)', description: 'Twilio auth token' },
    {
      name: 'TWILIO_FROM',
      schema: patternVariable(
        (text) => E164.test(text) || /^MG[0-9a-fA-F]{32}$/.test(text),
        'an E.164 number (+14155550100) or a Messaging Service SID (MG...)',
      ),
      default: '(none)',
      description: 'SMS sender: an E.164 number or a Messaging Service SID (MG...)',
    },
    {
      name: 'TWILIO_API_BASE',
      schema: httpUrlVariable,
      default: 'https://api.twilio.com',
      description: 'Twilio API base URL (a sandbox)',
    },
    {
      name: 'TWILIO_RATE_LIMIT',
      schema: rateLimitVariable,
      default: '(none)',
      description: "fleet-wide limit of requests to Twilio, e.g. 1/s (your sender's throughput)",
    },
  ],
  destination: () => TWILIO_PROVIDER,
  rateLimit: (values) => values.TWILIO_RATE_LIMIT as RateLimit | undefined,
  configured: (values) => VARIABLES.some((variable) => !!values[variable]),
  requires: (values) => VARIABLES.map((variable) => ({ variable, set: !!values[variable] })),
  create: ({ values, timeoutMs, observe, redis, prefix }) =>
    createTwilioDelivery({
      accountSid: values.TWILIO_ACCOUNT_SID as string,
      authToken: values.TWILIO_AUTH_TOKEN as string,
      from: values.TWILIO_FROM as string,
      timeoutMs,
      redis,
      prefix,
      ...(typeof values.TWILIO_API_BASE === 'string' && { apiBase: values.TWILIO_API_BASE }),
      ...(observe && { observe }),
    }),
};
