/**
 * The delivery port: the one interface through which every task reaches the outside
 * world. The generic adapter is the Standard Webhooks one (webhook.ts); native
 * providers plug in beside it. An adapter either resolves with a receipt or throws a
 * RetryableDeliveryError or TerminalDeliveryError (src/delivery/errors.ts); anything else
 * it throws is treated as retryable.
 */

export interface DeliveryRequest<Payload = unknown> {
  type: string;
  jobId: string;
  /** Goes to the provider as its idempotency key: the same key is never delivered twice. */
  idempotencyKey: string;
  conversationId: string;
  /** 1 for the first attempt. */
  attempt: number;
  createdAt: number;
  /** Epoch ms; travels with the request so a receiver can refuse stale work too. */
  expiresAt: number;
  payload: Payload;
}

export interface DeliveryReceipt {
  provider: string;
  /** HTTP status or provider status of the accepted request. */
  status?: number;
  /** The provider's id for the delivery (message id, SID), when it gives one. */
  messageId?: string;
  /** The limit the provider stated in its rate-limit headers (`ratelimit-limit`, per `periodMs`). */
  rateLimit?: { limit: number; periodMs: number };
}

export interface DeliveryPort {
  readonly provider: string;
  /**
   * Whether this port can reach the request's customer (an SMS port cannot reach a
   * customer without a phone number); routing then tries the type's next channel.
   * Absent: always.
   */
  reaches?(request: DeliveryRequest): boolean;
  /**
   * Delivers, or throws a RetryableDeliveryError or TerminalDeliveryError. `signal` aborts
   * the request when the worker shuts down and its grace period has run out: the job is
   * then put back for another worker, using no attempt.
   */
  deliver<Payload>(request: DeliveryRequest<Payload>, signal: AbortSignal): Promise<DeliveryReceipt>;
}
