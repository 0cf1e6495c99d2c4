/**
 * The HTTP API's metrics, served at /metrics together with the producer's (the server
 * enqueues through a producer): requests by route, method and status, their duration, and
 * platform events kept as rejected. `route` is the route's pattern
 * (`/v1/conversations/:conversationId/tasks`), never the requested path, so a conversation
 * id never becomes a label.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { producerRegistry } from '../producer/producer-metrics.js';

export const httpRegistry = new Registry();

export const httpMetrics = {
  requests: new Counter({
    name: 'aftercall_http_requests_total',
    help: 'HTTP API requests by route pattern, method and status code.',
    labelNames: ['route', 'method', 'status'],
    registers: [httpRegistry],
  }),
  duration: new Histogram({
    name: 'aftercall_http_request_duration_seconds',
    help: 'HTTP API request duration by route pattern and method.',
    labelNames: ['route', 'method'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [httpRegistry],
  }),
  rejected: new Counter({
    name: 'aftercall_ingest_rejected_total',
    help: 'Verified platform events that could not be mapped to an outcome, kept in the rejected-events store.',
    labelNames: ['platform'],
    registers: [httpRegistry],
  }),
};

/** What /metrics serves: the API's metrics and the producer's. */
export const serverRegistry = Registry.merge([httpRegistry, producerRegistry]);
