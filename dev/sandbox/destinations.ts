/**
 * Destinations: the places the sandbox's fakes stand in for, named the way the fleet names
 * them (src/delivery), so a limit, an outage or a counter means the same thing on both sides:
 *
 *   resend            POST /emails
 *   twilio            POST /2010-04-01/Accounts/{AccountSid}/Messages.json
 *   webhook:<type>    POST /webhooks/<type>, one destination per path the receiver serves
 *
 * A limit may also name `*`: every destination without a limit of its own.
 */
import type { DeliveryProvider } from './delivery-log.js';

/** Every destination without its own entry in `limits`. */
export const ANY_DESTINATION = '*';

/** `resend`, `twilio` or `webhook:<type>` with a type of letters, digits, `_`, `-` and `.` (at most 64). */
export const DESTINATION_NAME = /^(?:resend|twilio|webhook:[A-Za-z0-9_.-]{1,64})$/;

export const DESTINATION_EXPECTED = 'expected resend, twilio or webhook:<type> (letters, digits, _ - .)';

export function isDestinationName(name: string): boolean {
  return DESTINATION_NAME.test(name);
}

/** The destination a request to `provider` at `path` is for. */
export function destinationOf(provider: DeliveryProvider, path: string): string {
  if (provider !== 'webhook') return provider;
  const segment = /^\/webhooks\/([^/]+)$/.exec(path)?.[1] ?? '';
  let type: string;
  try {
    type = decodeURIComponent(segment);
  } catch {
    type = segment;
  }
  return `webhook:${type}`;
}
