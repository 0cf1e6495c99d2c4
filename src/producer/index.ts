/**
 * `aftercall/producer`: what a voice-agent server imports. It loads the outcome contract,
 * the task catalog, the producer and its metrics, ioredis and BullMQ's Queue (from its own
 * module, through redis/bullmq-compat.ts: BullMQ's index would load the Worker class too);
 * no worker, metrics server, provider SDK, HTTP framework or sandbox code.
 * test/producer-entry.test.ts checks the real module graph; the producer-import benchmark
 * measures its import time and heap against the full package (`aftercall`), which
 * re-exports all of this.
 */
export {
  conversationOutcomeSchema,
  conversationOutcomeJsonSchema,
  parseConversationOutcome,
  OUTCOME_KINDS,
  type ConversationOutcome,
  type OutcomeKind,
} from '../contract/conversation-outcome.js';
export { OutcomeValidationError, ValidationError, type FieldIssue } from '../contract/validation-error.js';
export {
  createProducer,
  RedisUnavailableError,
  EnqueueError,
  type Producer,
  type ProducerOptions,
  type EnqueueResult,
  type EnqueuedTask,
} from './producer.js';
export { producerRegistry } from './producer-metrics.js';
export { planOutcome, type Plan, type PlannedTask, type SkipReason } from '../tasks/plan.js';
