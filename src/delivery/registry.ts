/**
 * The delivery providers, in one list. The configuration reads each one's variables,
 * routing picks among them per type, the docs list them. A new provider is a folder under
 * providers/ with its `provider.ts`, and one line here.
 *
 * The order is `auto` routing's preference for a type that several can serve: SMS first
 * (customers read texts sooner), then e-mail; the webhook closes the chain.
 */
import type { DeliveryProvider } from './provider.js';
import { resendProvider } from './providers/resend/provider.js';
import { twilioProvider } from './providers/twilio/provider.js';
import { webhookProvider } from './providers/webhook/provider.js';

export const PROVIDERS: readonly DeliveryProvider[] = [twilioProvider, resendProvider, webhookProvider];

export function providerNamed(name: string): DeliveryProvider | undefined {
  return PROVIDERS.find((provider) => provider.name === name);
}
