/**
 * `aftercall/producer`: what a voice-agent server imports. It loads the outcome contract,
 * the task catalog, the producer and its metrics, ioredis and BullMQ's Queue; no worker,
 * metrics server, provider SDK, HTTP framework or sandbox code (a test checks the module
 * graph). The full package (`aftercall`) re-exports all of this.
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
