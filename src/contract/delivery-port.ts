/**
 * The delivery port: the one interface through which every task reaches the outside
 * world. The generic adapter is the Standard Webhooks one (webhook.ts); native
 * providers plug in beside it. An adapter either resolves with a receipt or throws a
 * RetryableDeliveryError or TerminalDeliveryError (delivery-errors.ts); anything else
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
}

export interface DeliveryPort {
  readonly provider: string;
  deliver<Payload>(request: DeliveryRequest<Payload>, signal: AbortSignal): Promise<DeliveryReceipt>;
}
