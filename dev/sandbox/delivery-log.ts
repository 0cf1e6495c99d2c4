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
 * entries; they show in the counters. The ones a provider refuses for its own reasons (a
 * 429 over its limit or by chance, a 503 during an outage, a drawn server error) are also
 * kept apart, as rejections with their arrival time, so a test can count per destination
 * and per window what the provider turned away.
 */

export const DELIVERY_PROVIDERS = ['resend', 'twilio', 'webhook'] as const;
export type DeliveryProvider = (typeof DELIVERY_PROVIDERS)[number];

export interface Delivery {
  provider: DeliveryProvider;
  /** `resend`, `twilio` or `webhook:<type>` (destinations.ts). */
  destination: string;
  /** Resend e-mail id / Twilio message SID / webhook receipt id. */
  id: string;
  /** The task's idempotency key, percent-decoded; null when the request carried none. */
  idempotencyKey: string | null;
  /** ISO-8601: when the provider completed it (after its latency). */
  receivedAt: string;
  /**
   * ISO-8601: when the request arrived, before the provider's latency; the time its rate
   * limit and the traffic report count.
   */
  arrivedAt: string;
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

/** A request the provider turned away for its own reasons; never a delivery. */
export interface Rejection {
  provider: DeliveryProvider;
  destination: string;
  /** ISO-8601 arrival time. */
  receivedAt: string;
  status: number;
  /** `limit`: over the destination's limit (429); `outage`: the destination was down (503); `gone`: a removed webhook endpoint (410); `fault`: drawn by chance (429 or 5xx). */
  reason: 'limit' | 'outage' | 'gone' | 'fault';
  /** The task's idempotency key, percent-decoded, when the request's headers carried one. */
  idempotencyKey: string | null;
}

export interface FaultCounts {
  /** 429s, over a destination's limit or drawn by chance. */
  rateLimited: number;
  /** 5xx answers the sandbox chose: drawn by chance, or during an outage. */
  serverErrors: number;
  hung: number;
  terminal: number;
  /** Of `rateLimited`: over a destination's limit. */
  overLimit: number;
  /** Of `serverErrors`: 503s during an outage. */
  outage: number;
  /** 410s from webhook destinations listed as gone. */
  gone: number;
}

export interface SandboxStats {
  /** Requests to provider endpoints, whatever became of them. */
  requests: number;
  byProvider: Record<string, number>;
  faults: FaultCounts;
}

const noFaults = (): FaultCounts => ({
  rateLimited: 0,
  serverErrors: 0,
  hung: 0,
  terminal: 0,
  overLimit: 0,
  outage: 0,
  gone: 0,
});

export class DeliveryLog {
  private entries: Delivery[] = [];
  private rejections: Rejection[] = [];
  private requests = 0;
  private byProvider: Record<DeliveryProvider, number> = { resend: 0, twilio: 0, webhook: 0 };
  private faults: FaultCounts = noFaults();

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

  reject(rejection: Rejection): void {
    this.rejections.push(rejection);
  }

  /** Rejections in arrival order. */
  rejected(filter: { provider?: DeliveryProvider; destination?: string } = {}): Rejection[] {
    return this.rejections
      .filter(
        (entry) =>
          (!filter.provider || entry.provider === filter.provider) &&
          (!filter.destination || entry.destination === filter.destination),
      )
      .map((entry) => ({ ...entry }));
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
    this.rejections = [];
    this.requests = 0;
    this.byProvider = { resend: 0, twilio: 0, webhook: 0 };
    this.faults = noFaults();
  }
}
