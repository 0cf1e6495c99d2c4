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
} from './contract/conversation-outcome.js';
export {
  createProducer,
  RedisUnavailableError,
  EnqueueError,
  type Producer,
  type ProducerOptions,
  type EnqueueResult,
  type EnqueuedTask,
} from './producer/producer.js';
export { planOutcome, type Plan, type PlannedTask, type SkipReason } from './tasks/plan.js';
export { OutcomeValidationError, ValidationError, type FieldIssue } from './contract/validation-error.js';
export {
  catalog,
  taskTypes,
  taskDefinition,
  resolveTaskConfigs,
  type TaskType,
  type TaskOverrides,
  type TaskConfig,
} from './tasks/catalog.js';
export type { TaskDefinition } from './tasks/task-definition.js';
export { conversationStatus, TASK_STATES, type TaskStatus, type TaskState } from './ops/status.js';
export {
  DeadLetterQueue,
  DEAD_LETTER_REASONS,
  type DeadLetterEntry,
  type DeadLetterReason,
  type DeadLetterCounts,
} from './redis/dead-letter-queue.js';
export { conversationTaskKey, bookingTaskKey, jobIdFor, idempotencyKeyOf, asciiKey } from './tasks/job-id.js';
export { queueName, typeKeys, DEFAULT_PREFIX } from './redis/keys.js';
export { createRedisConnection } from './redis/connection.js';
export { startWorker, type FleetWorker, type WorkerProcessOptions } from './worker/worker.js';
export { sweepExpiredJobs, type SweepResult } from './worker/expiry-sweeper.js';
export { loadConfig, ConfigError, configVariables, type AftercallConfig } from './config/environment.js';
export type { DeliveryPort, DeliveryRequest, DeliveryReceipt } from './contract/delivery-port.js';
export { RetryableDeliveryError, TerminalDeliveryError } from './delivery/errors.js';
export { createWebhookDelivery } from './delivery/providers/webhook/webhook.js';
export { createLogger } from './worker/logger.js';
export { createWorkerMetrics, type WorkerMetrics } from './worker/worker-metrics.js';
export { producerRegistry } from './producer/producer-metrics.js';
export { readFleetState, type FleetState } from './redis/fleet-state.js';
export { createResendDelivery } from './delivery/providers/resend/resend.js';
export { createTwilioDelivery } from './delivery/providers/twilio/twilio.js';
export { createDeliveryRouter, type ChannelSetting, type DeliveryConfig } from './delivery/routing.js';
export { PROVIDERS } from './delivery/registry.js';
export type { DeliveryProvider, ProviderVariable } from './delivery/provider.js';
