/** A fresh delivery request for calling an adapter directly: its own job, key and conversation, expiring in an hour. */
import type { DeliveryRequest } from '../../src/contract/delivery-port.js';

let sequence = 0;

export function deliveryRequest(type: string): DeliveryRequest {
  sequence += 1;
  return {
    type,
    jobId: `job-${sequence}`,
    idempotencyKey: `conv-${sequence}:${type}`,
    conversationId: `conv-${sequence}`,
    attempt: 1,
    createdAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    payload: {},
  };
}
