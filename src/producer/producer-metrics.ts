/**
 * The producer's metrics, in a registry of their own: a voice-agent server exposes them
 * (`producerRegistry.metrics()`) beside its own. Loading them loads prom-client only.
 */
import { Counter, Histogram, Registry } from 'prom-client';

/** The producer's metrics, for a voice-agent server to expose (`producerRegistry.metrics()`). */
export const producerRegistry = new Registry();

export const producerMetrics = {
  outcomes: new Counter({
    name: 'aftercall_producer_outcomes_total',
    help: 'conversationEnded calls by result (accepted, rejected, unavailable).',
    labelNames: ['result'],
    registers: [producerRegistry],
  }),
  tasks: new Counter({
    name: 'aftercall_producer_tasks_total',
    help: 'Tasks named by accepted outcomes, by type and whether this call created them.',
    labelNames: ['type', 'created'],
    registers: [producerRegistry],
  }),
  duration: new Histogram({
    name: 'aftercall_producer_enqueue_duration_seconds',
    help: 'Duration of conversationEnded.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [producerRegistry],
  }),
};
