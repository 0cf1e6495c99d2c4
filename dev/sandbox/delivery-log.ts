/**
 * The delivery log: what the sandbox's fake providers accepted, in arrival order, and how
 * many requests and faults they saw.
 *
 * An entry is a raw receipt: one per request the provider accepted (and, for a hung
 * request, processed although its answer never reached the client). Twilio has no
 * idempotency, so two sends of the same message are two entries; webhooks are recorded
 * per request too, so a test can count raw receipts and unique keys separately. Only
 * Resend's idempotent replays (same Idempotency-Key, same body, within 24 h) are not new
 * entries: Resend itself does not send the e-mail twice.
 *
 * Rejected requests (authentication, validation, terminal recipients, 429, 5xx) are never
 * entries; they show in the counters.
 */

export const DELIVERY_PROVIDERS = ['resend', 'twilio', 'webhook'] as const;
export type DeliveryProvider = (typeof DELIVERY_PROVIDERS)[number];

export interface Delivery {
  provider: DeliveryProvider;
  /** Resend e-mail id / Twilio message SID / webhook receipt id. */
  id: string;
  /** The task's idempotency key, percent-decoded; null when the request carried none. */
  idempotencyKey: string | null;
  /** ISO-8601. */
  receivedAt: string;
  /** The task's expiry as the client sent it (ISO-8601), when it did. */
  expiresAt: string | null;
  /** Task type, when known (webhook body.type or path segment, X-Aftercall-Type). */
  type: string | null;
  /** E-mail address(es) or phone number, when there is one. */
  to: string | null;
  /** The sender, when the request named one (Twilio's From). */
  from?: string;
  subject?: string;
  text?: string;
  html?: string;
  /** SMS text. */
  body?: string;
  /** Request path (webhooks). */
  path?: string;
  attempt?: number;
}

export interface FaultCounts {
  rateLimited: number;
  serverErrors: number;
  hung: number;
  terminal: number;
}

export interface SandboxStats {
  /** Requests to provider endpoints, whatever became of them. */
  requests: number;
  byProvider: Record<string, number>;
  faults: FaultCounts;
}

export class DeliveryLog {
  private entries: Delivery[] = [];
  private requests = 0;
  private byProvider: Record<DeliveryProvider, number> = { resend: 0, twilio: 0, webhook: 0 };
  private faults: FaultCounts = { rateLimited: 0, serverErrors: 0, hung: 0, terminal: 0 };

  countRequest(provider: DeliveryProvider): void {
    this.requests += 1;
    this.byProvider[provider] += 1;
  }

  countFault(kind: keyof FaultCounts): void {
    this.faults[kind] += 1;
  }

  record(delivery: Delivery): void {
    this.entries.push(delivery);
  }

  list(filter: { provider?: DeliveryProvider } = {}): Delivery[] {
    const selected = filter.provider
      ? this.entries.filter((entry) => entry.provider === filter.provider)
      : this.entries;
    return selected.map((entry) => ({ ...entry }));
  }

  stats(): SandboxStats {
    return { requests: this.requests, byProvider: { ...this.byProvider }, faults: { ...this.faults } };
  }

  reset(): void {
    this.entries = [];
    this.requests = 0;
    this.byProvider = { resend: 0, twilio: 0, webhook: 0 };
    this.faults = { rateLimited: 0, serverErrors: 0, hung: 0, terminal: 0 };
  }
}
