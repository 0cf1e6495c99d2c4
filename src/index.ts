/**
 * aftercall's library API: what a voice-agent server imports (the producer and the
 * outcome contract) and what an operator's tooling uses (status, dead-letter queue,
 * worker, sweeper).
 */
export {
  conversationOutcomeSchema,
  conversationOutcomeJsonSchema,
  parseConversationOutcome,
  OUTCOME_KINDS,
  type ConversationOutcome,
  type OutcomeKind,
} from './producers/conversation-outcome.js';
export {
  createProducer,
  RedisUnavailableError,
  EnqueueError,
  type Producer,
  type ProducerOptions,
  type EnqueueResult,
  type EnqueuedTask,
} from './producers/producer.js';
export { planOutcome, type Plan, type PlannedTask, type SkipReason } from './producers/plan.js';
export { OutcomeValidationError, ValidationError, type FieldIssue } from './validation-error.js';
export { catalog, taskTypes, taskDefinition, resolveTaskConfigs, type TaskType, type TaskOverrides, type TaskConfig } from './tasks/catalog.js';
export type { TaskDefinition } from './tasks/task-definition.js';
export { conversationStatus, TASK_STATES, type TaskStatus, type TaskState } from './status.js';
export {
  DeadLetterQueue,
  DEAD_LETTER_REASONS,
  type DeadLetterEntry,
  type DeadLetterReason,
  type DeadLetterCounts,
} from './queues/dead-letter-queue.js';
export { conversationTaskKey, bookingTaskKey, jobIdFor, idempotencyKeyOf, asciiKey } from './queues/job-id.js';
export { queueName, typeKeys, DEFAULT_PREFIX } from './queues/keys.js';
export { createRedisConnection } from './queues/connection.js';
export { startWorker, type FleetWorker, type WorkerProcessOptions } from './worker.js';
export { sweepExpiredJobs, type SweepResult } from './expiry-sweeper.js';
export { loadConfig, ConfigError, configVariables, type AftercallConfig } from './config.js';
export type { DeliveryPort, DeliveryRequest, DeliveryReceipt } from './providers/delivery-port.js';
export { RetryableDeliveryError, TerminalDeliveryError } from './providers/delivery-errors.js';
export { createWebhookDelivery } from './providers/webhook.js';
export { createLogger } from './logger.js';
export { producerRegistry, createWorkerMetrics, readFleetState, type WorkerMetrics, type FleetState } from './metrics.js';
export { createResendDelivery } from './providers/resend.js';
export { createTwilioDelivery } from './providers/twilio.js';
export { createDeliveryRouter, type Channel, type ChannelSetting } from './providers/channels.js';
