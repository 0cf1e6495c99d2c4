/**
 * One fleet process: BullMQ workers for the selected task types (one queue per type,
 * `concurrency` jobs at once per queue), the expiry sweeper, and a clean shutdown.
 * Run many side by side; they share the work through Redis.
 *
 * Start-up refuses a task type that is switched on but has nowhere to go (a channel that
 * is chosen but not configured: no webhook URL, no signing secret, no Resend or Twilio
 * credentials), naming the variable. Connections reconnect forever: a Redis restart
 * pauses the process, it does not stop it.
 *
 * Shutdown (SIGTERM, SIGINT, or `close()`): stop taking jobs, let active jobs finish
 * within the grace period (default 25 s). When it runs out, the requests still in flight
 * are cancelled (the AbortSignal every adapter receives) and their jobs go back to the
 * queue, using no attempt. A job that does not come back within 5 s more (an adapter
 * ignoring the signal) keeps its lock until it lapses and is then picked up by another
 * process (BullMQ's stalled-job recovery), as are the jobs of a process killed with
 * SIGKILL; the idempotency key keeps the delivery single.
 */
import { hostname } from 'node:os';
import { Worker } from 'bullmq';
import type { AftercallConfig } from '../config/environment.js';
import { startExpirySweeper, type ExpirySweeper, type SweepResult } from './expiry-sweeper.js';
import { createLogger, scrubText, type Logger } from './logger.js';
import { createWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';
import { startMetricsServer } from './health-server.js';
import { createJobHandler, type JobOutcomeEvent } from './job-handler.js';
import type { DeliveryPort } from '../contract/delivery-port.js';
import { createDeliveryRouter, type DeliveryRouter } from '../delivery/routing.js';
import { createDestinationPolicy } from '../delivery/destination-policy.js';
import { createDestinationStore } from '../redis/destination-store.js';
import { backoffStrategy } from './retry-policy.js';
import { createRedisConnection, describeRedisTarget } from '../redis/connection.js';
import { queueName, typeKeys } from '../redis/keys.js';
import { defineScripts } from '../redis/scripts.js';
import { stopBlockingRecovery } from '../redis/bullmq-compat.js';
import { ConversationSettler } from '../redis/conversation-settlement.js';
import { resolveTaskConfigs, taskDefinition, taskTypes, type TaskType } from '../tasks/catalog.js';
import { systemClock, type Clock } from '../contract/time.js';

/** Job results that finish a task for its conversation's countdown (replaced counts as done). */
const FINISHED = new Set<JobOutcomeEvent['result']>(['completed', 'dead_lettered', 'superseded']);

/** After the grace period: how long cancelled jobs get to go back to the queue before a forced close. */
const CANCEL_GRACE_MS = 5_000;

export interface WorkerProcessOptions {
  config: AftercallConfig;
  /** Task types to serve; default every type that is switched on. */
  queues?: readonly TaskType[];
  /** Jobs at once per queue; default WORKER_CONCURRENCY. */
  concurrency?: number;
  /** Delivery port per type, in place of the configured channels (tests). */
  ports?: Partial<Record<TaskType, DeliveryPort>>;
  /** Take part in the expiry sweep; default SWEEPER_ENABLED. */
  sweeper?: boolean;
  clock?: Clock;
  logger?: Logger;
  onOutcome?: (event: JobOutcomeEvent) => void;
  onSweep?: (result: SweepResult) => void;
  /** Port of /metrics, /healthz, /readyz; default METRICS_PORT; 0: none. */
  metricsPort?: number;
}

export interface FleetWorker {
  readonly name: string;
  readonly queues: readonly TaskType[];
  readonly metrics: WorkerMetrics;
  /** Where /metrics, /healthz and /readyz are served, when they are. */
  readonly metricsUrl: string | undefined;
  /** Resolves once every queue's worker is running. */
  readonly ready: Promise<void>;
  /** Graceful shutdown; resolves when the process may exit. */
  close(): Promise<void>;
}

export async function startWorker(options: WorkerProcessOptions): Promise<FleetWorker> {
  const { config } = options;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? systemClock;
  const taskConfigs = resolveTaskConfigs(config.tasks);
  const enabledTypes = taskTypes.filter((type) => taskConfigs.get(type)!.enabled);
  const queues = options.queues ?? enabledTypes;
  const concurrency = options.concurrency ?? config.worker.concurrency;
  const name = `${hostname()}:${process.pid}`;
  const client = createRedisConnection('worker', { redis: config.redis, name: `aftercall-worker:${name}` });
  const metrics = createWorkerMetrics({ client, prefix: config.prefix, clock, types: enabledTypes });
  // Conversation metrics: finished tasks counted down on their conversations, in batches.
  const settler = new ConversationSettler(client, config.prefix, {
    onError: (error) => logger.warn({ error: scrubText((error as Error).message) }, 'conversation countdown failed'),
  });
  let port: DeliveryRouter;
  try {
    // Throws ConfigError naming each variable a served type's channels need.
    port = createDeliveryRouter({
      config: config.delivery,
      prefix: config.prefix,
      types: queues,
      redis: client,
      observe: metrics.observeProvider,
      ...(options.ports && { ports: options.ports }),
    });
  } catch (error) {
    client.disconnect();
    throw error;
  }
  defineScripts(client);
  const destinationStore = createDestinationStore(client, config.prefix);
  const policy = createDestinationPolicy({
    store: destinationStore,
    limits: Object.fromEntries(port.destinations()),
    circuit: config.circuit,
    defaultHoldMs: config.retry.baseDelayMs,
    deliveryTimeoutMs: config.delivery.timeoutMs,
    // A destination without rate limits seen closed is trusted for 100 ms (as long as
    // successes may wait to be sent) instead of a Redis round trip before every delivery.
    trustClosedMs: 100,
    clock,
    onTransition: (destination, to) => {
      metrics.onTransition(destination, to);
      logger.warn({ destination, state: to }, `destination ${destination} is now ${to}`);
    },
    onError: (error) => logger.error({ err: scrubText(error.message) }, 'destination state could not be recorded'),
  });
  metrics.watchDestinations([...port.destinations().keys()], (destination) =>
    destinationStore.read(destination, clock(), config.circuit.windowMs),
  );
  // Aborted when the shutdown grace runs out: requests in flight are cancelled, and their
  // jobs go back to the queue without using an attempt.
  const shutdown = new AbortController();

  const workers = queues.map((type) => {
    const definition = taskDefinition(type);
    const handler = createJobHandler({
      definition,
      config: taskConfigs.get(type)!,
      port,
      policy,
      destinationOf: port.destinationOf,
      shutdown: shutdown.signal,
      keys: typeKeys(config.prefix, type),
      client,
      retryPolicy: config.retry,
      deliveryTimeoutMs: config.delivery.timeoutMs,
      clock,
      logger,
      onOutcome: (event) => {
        metrics.onJobOutcome(event);
        if (event.anchor && event.conversationId && FINISHED.has(event.result)) {
          settler.finished(event.anchor, event.conversationId, event.result !== 'dead_lettered', event.solo);
        }
        options.onOutcome?.(event);
      },
    });
    const worker = new Worker(queueName(type), handler, {
      connection: client,
      prefix: config.prefix,
      name,
      concurrency,
      lockDuration: config.worker.lockDurationMs,
      stalledInterval: config.worker.stalledIntervalMs,
      maxStalledCount: config.worker.maxStalledCount,
      settings: { backoffStrategy: backoffStrategy(config.retry) },
    });
    worker.on('error', (error) => logger.error({ type, err: scrubText(error.message) }, 'worker error'));
    worker.on('failed', (job, error) => {
      // Jobs the handler dead-letters or schedules for a retry never get here. This is
      // BullMQ failing a job by itself (one that crashed its workers too often: into the
      // failed set, the dead-letter store, as exhausted), or an error that escaped the
      // handler (Redis lost mid-job), which BullMQ retries while attempts remain.
      if (job && error.name !== 'RetryScheduledError') {
        const final = job.finishedOn !== undefined;
        const data = job.data as { anchor?: TaskType; conversationId?: string; solo?: boolean } | undefined;
        if (final && data?.anchor && data.conversationId) {
          settler.finished(data.anchor, data.conversationId, false, data.solo === true);
        }
        logger.warn(
          {
            type,
            jobId: job.id,
            attempt: job.attemptsMade,
            result: final ? 'dead_lettered' : 'retrying',
            ...(final && { reason: 'exhausted' }),
            error: scrubText(error.message),
          },
          'job failed',
        );
      }
    });
    return worker;
  });

  let sweeper: ExpirySweeper | undefined;
  if (options.sweeper ?? config.sweeper.enabled) {
    sweeper = await startExpirySweeper({
      client,
      prefix: config.prefix,
      intervalMs: config.sweeper.intervalMs,
      batchSize: config.sweeper.batchSize,
      dedupeWindowMs: config.dedupeWindowMs,
      logger,
      clock,
      workerName: name,
      onSweep: (result) => {
        metrics.onSweep(result);
        options.onSweep?.(result);
      },
    });
  }
  metrics.serving(queues);

  let closing: Promise<void> | undefined;
  const metricsPort = options.metricsPort ?? config.metricsPort;
  const server =
    metricsPort > 0
      ? await startMetricsServer({
          port: metricsPort,
          registry: metrics.registry,
          ready: async () =>
            !closing &&
            workers.every((worker) => worker.isRunning()) &&
            (await Promise.race([
              client.ping().then(() => true),
              new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_000).unref()),
            ])),
        })
      : undefined;

  const ready = Promise.all(workers.map((worker) => worker.waitUntilReady())).then(() => {
    logger.info(
      { queues, concurrency, redis: describeRedisTarget(config.redis), sweeper: !!sweeper },
      'worker started',
    );
  });

  const close = () => {
    closing ??= (async () => {
      logger.info({ graceMs: config.worker.shutdownGraceMs }, 'worker stopping: no new jobs, waiting for active ones');
      let timer: NodeJS.Timeout | undefined;
      // On a Redis Cluster, BullMQ could reconnect a worker's blocking connection in the
      // middle of its close and then wait for it forever (bullmq-compat.ts).
      for (const worker of workers) stopBlockingRecovery(worker);
      const timedOut = await Promise.race([
        Promise.all(workers.map((worker) => worker.close())).then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), config.worker.shutdownGraceMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        // Cancel the requests still in flight: each job goes back to the queue (no attempt
        // used) while this process still holds its lock, so another worker takes it at once.
        logger.warn('grace period over: cancelling requests in flight; their jobs go back to the queue');
        shutdown.abort(new Error('worker shutdown: grace period over'));
        const settled = await Promise.race([
          Promise.all(workers.map((worker) => worker.close())).then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), CANCEL_GRACE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (!settled) {
          logger.warn('forced close: jobs still running will be picked up by another worker when their locks lapse');
          // close(true) hands back a close already under way: it gets CANCEL_GRACE_MS too, and
          // then shutdown goes on without it, so that a close BullMQ never finishes cannot
          // hold the process.
          const forced = await Promise.race([
            Promise.all(workers.map((worker) => worker.close(true))).then(() => true),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(false), CANCEL_GRACE_MS);
            }),
          ]);
          clearTimeout(timer);
          if (!forced) {
            logger.error('BullMQ workers did not close in time: shutting down without them');
          }
        }
      }
      await settler.flush();
      await policy.close();
      await sweeper?.close();
      await server?.close();
      await client.quit().catch(() => client.disconnect());
      logger.info('worker stopped');
    })();
    return closing;
  };

  return { name, queues, metrics, metricsUrl: server?.url, ready, close };
}
