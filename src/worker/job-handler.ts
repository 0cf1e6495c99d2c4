/**
 * The shared job handler: what every worker runs for every job, whatever its type.
 *
 * 1. Read the job back and validate it (envelope and the type's payload schema). Data
 *    that fails is dead-lettered with reason `invalid`; the worker keeps running.
 * 2. Check expiry at pickup: a job whose expiresAt has passed, or comes sooner than one
 *    attempt can take (the provider request timeout), is dead-lettered with reason
 *    `expired`; the provider is not called. So no delivery arrives after its expiry.
 * 3. A scoped task (a booking's reminder) that is no longer its scope's current task
 *    (replaced or cancelled while it was being picked up) completes without delivery.
 * 4. Deliver through the type's processor and port, with the idempotency key.
 * 5. On failure, decide:
 *    - terminal error: dead-letter now, reason `terminal`;
 *    - retryable, but this was the last attempt: dead-letter, reason `exhausted`;
 *    - retryable, but the next attempt (after backoff, or the provider's Retry-After)
 *      would start after expiresAt: dead-letter now, reason `expired`;
 *    - otherwise hand BullMQ the delay and let it schedule the retry.
 *
 * Dead-lettering moves the job out of the active list into the type's dead-letter store
 * in one script that checks this worker's lock (dead-letter-active-10.lua), so it happens
 * once even when processes race. The handler then throws movedOutOfActive (bullmq-compat),
 * which tells BullMQ the job has been moved already and must not be finished again.
 *
 * Attempt history (redis/attempt-history.ts): every attempt that reached its destination is
 * recorded with the job, in calls the handler makes anyway: the dead-lettering script, the
 * retrying-index update, the return value of a success; a postponement costs one call more.
 *
 * Every outcome is one log line: conversationId, jobId, type, attempt, durationMs,
 * result, and reason and error when it failed. Never the payload.
 */
import type { Job } from 'bullmq';
import { scrubText, type Logger } from './logger.js';
import { retryDelay, RetryScheduledError, type RetryPolicy } from './retry-policy.js';
import { parseJobData } from '../tasks/job-data.js';
import { movedOutOfActive } from '../redis/bullmq-compat.js';
import type { TypeKeys } from '../redis/keys.js';
import { deadLetterActive, recordAttempt, type RedisClient } from '../redis/scripts.js';
import {
  HISTORY_FIELD,
  HISTORY_LIMIT,
  historyOf,
  storedAttempt,
  type StoredAttempt,
} from '../redis/attempt-history.js';
import { context, SpanKind, trace } from '@opentelemetry/api';
import {
  contextFrom,
  linksTo,
  recordError,
  tracer,
  tracingEnabled,
  type StoredTraceContext,
} from '../contract/tracing.js';
import type { DeliveryPort, DeliveryReceipt, DeliveryRequest } from '../contract/delivery-port.js';
import type { DestinationPolicy } from '../delivery/destination-policy.js';
import { RetryableDeliveryError, TerminalDeliveryError } from '../delivery/errors.js';
import type { AnyTaskDefinition, TaskConfig, TaskType } from '../tasks/catalog.js';
import { formatDuration, toIso, type Clock } from '../contract/time.js';
import type { DeadLetterReason } from '../redis/dead-letter-queue.js';

/**
 * `postponed`: the job waits for its destination (a rate limit, an open circuit, a hold) or
 * was interrupted by shutdown, and goes back to BullMQ's delayed set using no attempt.
 */
export type JobResult = 'completed' | 'retrying' | 'dead_lettered' | 'superseded' | 'postponed';

/** What one attempt came to: a delivery's result, or a wait that used no attempt. */
export type AttemptResult = 'success' | 'retryable_error' | 'terminal_error' | 'rate_limited' | 'circuit_open';

export type WaitReason = 'rate_limit' | 'circuit' | 'shutdown';

/** A rate-limit wait up to this long is spent in the worker rather than in BullMQ's delayed set. */
const SHORT_WAIT_MS = 100;

/** Resolves true after `ms`, or false at once when `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export interface JobOutcomeEvent {
  type: string;
  jobId: string;
  conversationId?: string;
  attempt: number;
  durationMs: number;
  result: JobResult;
  reason?: DeadLetterReason;
  error?: string;
  /** When the task became due (epoch ms): its creation, or its scheduled run time. */
  dueAt?: number;
  provider?: string;
  /** Whether the provider was called in this attempt. */
  calledProvider: boolean;
  /** How the provider call went, or why it was not made (rate_limited, circuit_open). */
  attemptResult?: AttemptResult;
  /** The destination (resend, twilio, webhook:<type>), when the router names one. */
  destination?: string;
  /** Postponed: why the job waits. */
  waitReason?: WaitReason;
  /** Postponed: when it runs again (epoch ms). */
  waitUntil?: number;
  /** The HTTP status of the provider's answer, where there was one. */
  status?: number;
  /** The conversation's anchor task type (job data), where its follow-up is counted down. */
  anchor?: TaskType;
  /** The conversation's only task: finishing it settles the conversation. */
  solo?: boolean;
}

export interface JobHandlerOptions {
  definition: AnyTaskDefinition;
  config: TaskConfig;
  port: DeliveryPort;
  keys: TypeKeys;
  client: RedisClient;
  retryPolicy: RetryPolicy;
  /**
   * The longest one delivery attempt can take (the provider request timeout). An attempt
   * starts only when it can end before the task's expiry, so no delivery arrives stale.
   */
  deliveryTimeoutMs: number;
  clock: Clock;
  logger: Logger;
  /** Called once per job outcome (metrics). */
  onOutcome?: (event: JobOutcomeEvent) => void;
  /** Rate limits, holds and circuits of the destinations, shared by the fleet. */
  policy?: DestinationPolicy;
  /** The destination of a request (the router's); none: no destination policy applies. */
  destinationOf?: (request: DeliveryRequest) => string | undefined;
  /**
   * Aborted when the worker's shutdown grace has run out: requests in flight are cancelled
   * and their jobs go back to the queue, using no attempt.
   */
  shutdown?: AbortSignal;
  random?: () => number;
}

interface Failure {
  kind: 'retryable' | 'terminal';
  message: string;
  retryAfterMs?: number;
  /** The provider refused our credentials: every job of the type will fail the same way. */
  configuration?: boolean;
  /** A 429: the destination is saturated; the job waits, using no attempt. */
  rateLimited?: boolean;
  /** A 410 Gone: the destination is held until an operator closes it. */
  gone?: boolean;
  status?: number;
  provider?: string;
  rateLimit?: { limit: number; periodMs: number; resetMs?: number };
}

function classify(error: unknown): Failure {
  if (error instanceof TerminalDeliveryError) {
    const { configuration, gone, status, provider, rateLimit } = error.details;
    return {
      kind: 'terminal',
      message: error.message,
      provider,
      ...(configuration && { configuration: true }),
      ...(gone && { gone: true }),
      ...(status !== undefined && { status }),
      ...(rateLimit && { rateLimit }),
    };
  }
  if (error instanceof RetryableDeliveryError) {
    const { retryAfterMs, rateLimited, status, provider, rateLimit } = error.details;
    return {
      kind: 'retryable',
      message: error.message,
      provider,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
      ...(rateLimited && { rateLimited: true }),
      ...(status !== undefined && { status }),
      ...(rateLimit && { rateLimit }),
    };
  }
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { kind: 'retryable', message: `unexpected error: ${message}` };
}

const NEVER_ABORTED = new AbortController().signal;

export function createJobHandler(options: JobHandlerOptions) {
  const { definition, config, port, keys, client, retryPolicy, clock, logger, policy } = options;
  const shutdown = options.shutdown ?? NEVER_ABORTED;
  const random = options.random ?? Math.random;

  // Two parameters, not three: BullMQ makes an AbortController for every job of a
  // processor that takes a signal, and nothing here cancels a delivery on BullMQ's behalf
  // (each provider request has its own timeout).
  // Tracing (contract/tracing.ts): one span per attempt, `aftercall.deliver <type>`, continuing the
  // trace the producer stored on the job and linked to the task's earlier attempts. Without
  // an SDK registered every span is a no-op, and the job skips their set-up: the proxy
  // tracer, span, attributes and contexts the API would make and drop for each job.
  const spanName = `aftercall.deliver ${definition.type}`;
  async function handleJob(job: Job, token?: string): ReturnType<typeof attemptJob> {
    if (!tracingEnabled()) return attemptJob(job, token, false);
    const stored = (job.data as { trace?: StoredTraceContext } | undefined)?.trace;
    let links: ReturnType<typeof linksTo> = [];
    if (stored && job.attemptsMade > 0) {
      // A traced retry: its earlier attempts' span ids are in the history (one read, traced retries only).
      const earlier = historyOf({ [HISTORY_FIELD]: (await client.hget(keys.job(job.id!), HISTORY_FIELD)) ?? '[]' });
      links = linksTo(
        stored.traceparent.split('-')[1],
        earlier.flatMap((entry) => entry.spanId ?? []),
      );
    }
    const span = tracer().startSpan(
      spanName,
      {
        kind: SpanKind.CONSUMER,
        links,
        attributes: {
          'messaging.system': 'bullmq',
          'messaging.destination.name': definition.type,
          'messaging.message.id': job.id!,
          'aftercall.attempt': job.attemptsMade + 1,
        },
      },
      contextFrom(stored),
    );
    try {
      return await context.with(trace.setSpan(contextFrom(stored), span), () => attemptJob(job, token, true));
    } finally {
      span.end();
    }
  }
  return handleJob;

  async function attemptJob(
    job: Job,
    token: string | undefined,
    traced: boolean,
  ): Promise<(DeliveryReceipt & { attempt: StoredAttempt }) | { superseded: true }> {
    const startedAt = clock();
    const jobId = job.id!;
    const attempt = job.attemptsMade + 1;
    const parsed = parseJobData(definition, job.data);
    const conversationId = parsed.ok ? parsed.data.conversationId : parsed.envelope.conversationId;
    const dueAt = parsed.ok ? Math.max(parsed.data.createdAt, parsed.data.runAt) : undefined;
    const anchor = parsed.ok ? parsed.data.anchor : undefined;
    const solo = parsed.ok && parsed.data.solo === true;
    if (job.attemptsMade > 0) {
      // Back from a retry: no longer waiting for one (the gauge of retrying jobs).
      await client.zrem(keys.retrying, jobId);
    }

    const report = (
      event: Omit<JobOutcomeEvent, 'type' | 'jobId' | 'attempt' | 'durationMs' | 'conversationId' | 'dueAt'>,
    ) => {
      const full: JobOutcomeEvent = {
        type: definition.type,
        jobId,
        attempt,
        durationMs: clock() - startedAt,
        ...(conversationId !== undefined && { conversationId }),
        ...(dueAt !== undefined && { dueAt }),
        ...(anchor !== undefined && { anchor }),
        ...(solo && { solo }),
        ...event,
      };
      const line: Record<string, unknown> = {
        conversationId: full.conversationId,
        jobId,
        type: full.type,
        attempt,
        durationMs: full.durationMs,
        result: full.result,
      };
      if (full.reason) line.reason = full.reason;
      if (full.error) line.error = scrubText(full.error);
      if (full.result === 'dead_lettered') logger.warn(line, `job ${full.result}`);
      else logger.info(line, `job ${full.result}`);
      const span = traced ? trace.getActiveSpan() : undefined;
      if (span) {
        span.setAttributes({
          'aftercall.result': full.result,
          ...(full.conversationId !== undefined && { 'aftercall.conversation_id': full.conversationId }),
          ...(full.reason && { 'aftercall.dead_letter_reason': full.reason }),
          ...(full.destination && { 'aftercall.destination': full.destination }),
        });
        if (full.error && (full.result === 'retrying' || full.result === 'dead_lettered')) {
          recordError(span, new Error(scrubText(full.error)));
        }
      }
      options.onOutcome?.(full);
    };

    const spanId = () => {
      const span = traced ? trace.getActiveSpan()?.spanContext() : undefined;
      return span && trace.isSpanContextValid(span) ? span.spanId : undefined;
    };
    // Attempt history: this attempt's entry, its error scrubbed of customer data.
    const historyEntry = (
      result: AttemptResult,
      seen: { destination?: string; status?: number; error?: string },
    ): StoredAttempt =>
      storedAttempt({
        attempt,
        startedAt,
        durationMs: clock() - startedAt,
        result,
        destination: seen.destination,
        status: seen.status,
        error: seen.error === undefined ? undefined : scrubText(seen.error),
        spanId: spanId(),
      });

    const deadLetter = async (
      reason: DeadLetterReason,
      message: string,
      attempts: number,
      calledProvider: boolean,
      attemptResult?: JobOutcomeEvent['attemptResult'],
      seen: { destination?: string; status?: number } = {},
    ): Promise<never> => {
      const entry = attemptResult && historyEntry(attemptResult, { ...seen, error: message });
      const code = await deadLetterActive(client, keys, {
        jobId,
        token: token ?? '',
        reason,
        message: `${reason}: ${message}`,
        attempts,
        now: clock(),
        ...(entry && { entry, limit: HISTORY_LIMIT }),
      });
      if (code !== 0) {
        // The lock is no longer ours (the job stalled and another worker took it): that
        // worker decides. BullMQ will fail to finish it here too and move on.
        throw new Error(`could not dead-letter job ${jobId} (${reason}): lock lost (code ${code})`);
      }
      report({
        result: 'dead_lettered',
        reason,
        error: message,
        calledProvider,
        ...(attemptResult && { attemptResult }),
      });
      throw movedOutOfActive(`dead-lettered: ${reason}`);
    };

    if (!parsed.ok) {
      const detail = parsed.issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ');
      return deadLetter(
        'invalid',
        `job data does not match the ${definition.type} schema: ${detail}`,
        job.attemptsMade,
        false,
      );
    }
    const task = parsed.data;
    const now = clock();
    if (now >= task.expiresAt) {
      return deadLetter(
        'expired',
        `expired at pickup: expiresAt ${toIso(task.expiresAt)} passed ${formatDuration(now - task.expiresAt)} before`,
        job.attemptsMade,
        false,
      );
    }
    if (now + options.deliveryTimeoutMs >= task.expiresAt) {
      return deadLetter(
        'expired',
        `expires at ${toIso(task.expiresAt)}, sooner than one delivery attempt may take (${formatDuration(options.deliveryTimeoutMs)})`,
        job.attemptsMade,
        false,
      );
    }
    if (task.scopeId !== undefined) {
      const current = await client.hget(keys.scope(task.scopeId), 'jobId');
      if (current !== null && current !== jobId) {
        report({ result: 'superseded', calledProvider: false });
        return { superseded: true };
      }
    }

    const request: DeliveryRequest = {
      type: definition.type,
      jobId,
      idempotencyKey: task.idempotencyKey,
      conversationId: task.conversationId,
      attempt,
      createdAt: task.createdAt,
      expiresAt: task.expiresAt,
      payload: task.payload,
    };
    // The latest start from which one attempt still ends before the expiry.
    const deadline = task.expiresAt - options.deliveryTimeoutMs - 1;

    /** Back to BullMQ's delayed set until `at`, using no attempt. */
    const postpone = async (
      at: number,
      waitReason: WaitReason,
      message: string,
      extra: Partial<JobOutcomeEvent> = {},
    ): Promise<never> => {
      if (extra.attemptResult) {
        const entry = historyEntry(extra.attemptResult, { ...extra, destination, error: message });
        await recordAttempt(client, keys, { jobId, entry, limit: HISTORY_LIMIT });
      }
      await job.moveToDelayed(Math.max(at, clock()), token);
      report({
        result: 'postponed',
        waitReason,
        waitUntil: at,
        error: message,
        calledProvider: false,
        ...(destination && { destination }),
        ...extra,
      });
      throw movedOutOfActive(`postponed: ${waitReason}`);
    };

    const destination = policy ? options.destinationOf?.(request) : undefined;
    let probe = false;
    if (policy && destination) {
      let gate = await policy.acquire(destination, jobId, deadline);
      // A slot of the rate limit a moment away is waited for here: through BullMQ's delayed
      // set the job would come back later than its turn (the promotion, the fetch), and the
      // slot would go unused. The job keeps its place in the destination's queue meanwhile.
      for (
        let tries = 0;
        tries < 3 && !gate.go && !gate.expire && gate.reason === 'rate_limit' && gate.waitMs <= SHORT_WAIT_MS;
        tries += 1
      ) {
        if (!(await pause(gate.waitMs, shutdown))) break;
        gate = await policy.acquire(destination, jobId, deadline);
      }
      const attemptResult: AttemptResult = gate.go || gate.reason === 'rate_limit' ? 'rate_limited' : 'circuit_open';
      if (!gate.go && gate.expire) {
        return deadLetter('expired', gate.message, job.attemptsMade, false, attemptResult, { destination });
      }
      if (!gate.go) return postpone(clock() + gate.waitMs, gate.reason, gate.message, { attemptResult });
      probe = gate.probe;
    }

    try {
      const receipt = await definition.process(request, port, shutdown);
      if (policy && destination) {
        policy.learn(destination, receipt.rateLimit);
        await policy.report(destination, 'success', probe);
      }
      report({
        result: 'completed',
        provider: receipt.provider,
        calledProvider: true,
        attemptResult: 'success',
        ...(destination && { destination }),
        ...(receipt.status !== undefined && { status: receipt.status }),
      });
      // The success's history entry rides in the return value BullMQ stores anyway.
      return { ...receipt, attempt: historyEntry('success', { destination, status: receipt.status }) };
    } catch (error) {
      const failure = classify(error);
      const seen = {
        ...(destination && { destination }),
        ...(failure.status !== undefined && { status: failure.status }),
      };
      if (shutdown.aborted) {
        // Our shutdown cancelled the request, not the destination: the task did not fail.
        if (policy && destination && probe) await policy.report(destination, 'neutral', true);
        return postpone(clock(), 'shutdown', `interrupted by shutdown: ${failure.message}`, seen);
      }
      if (policy && destination) {
        policy.learn(destination, failure.rateLimit);
        if (failure.rateLimited) {
          // A 429 says "not now": the whole fleet holds the destination, and this job
          // waits for the hold to end, using no attempt.
          const until = await policy.hold(
            destination,
            failure.retryAfterMs ?? failure.rateLimit?.resetMs,
            failure.message,
          );
          if (probe) await policy.report(destination, 'neutral', true);
          const at = until + Math.floor(random() * 250);
          if (at > deadline) {
            return deadLetter(
              'expired',
              `${failure.message}; ${destination} is held until ${toIso(until)}, too late to end before expiresAt ${toIso(task.expiresAt)}`,
              job.attemptsMade,
              true,
              'rate_limited',
              seen,
            );
          }
          return postpone(at, 'rate_limit', `${failure.message}; ${destination} held until ${toIso(until)}`, {
            calledProvider: true,
            attemptResult: 'rate_limited',
            ...seen,
          });
        }
        if (failure.gone) await policy.gone(destination, failure.message);
        const state = await policy.report(destination, failure.kind === 'retryable' ? 'failure' : 'neutral', probe);
        if (failure.kind === 'retryable' && (state === 'open' || state === 'half_open')) {
          // The destination is down: this failure opened its circuit, failed its probe, or came
          // while it was open. It is the destination's, not the task's: the job waits for the
          // next probe, using no attempt.
          return postpone(
            clock() + Math.floor(random() * 250),
            'circuit',
            `${failure.message}; ${destination} is ${state}`,
            {
              calledProvider: true,
              attemptResult: 'circuit_open',
              ...seen,
            },
          );
        }
      }
      if (failure.configuration) {
        logger.error(
          { type: definition.type, jobId, provider: failure.provider, error: scrubText(failure.message) },
          'configuration error: the provider refused our credentials',
        );
      }
      if (failure.kind === 'terminal') {
        return deadLetter('terminal', failure.message, attempt, true, 'terminal_error', seen);
      }
      // The attempts the job was enqueued with (the producer's configuration at the time).
      const maxAttempts = job.opts.attempts || config.attempts;
      if (attempt >= maxAttempts) {
        return deadLetter(
          'exhausted',
          `${failure.message} (attempt ${attempt} of ${maxAttempts})`,
          attempt,
          true,
          'retryable_error',
          seen,
        );
      }
      const delay = retryDelay(attempt, retryPolicy, failure.retryAfterMs);
      const nextAttemptAt = clock() + delay;
      if (nextAttemptAt + options.deliveryTimeoutMs >= task.expiresAt) {
        return deadLetter(
          'expired',
          `${failure.message}; the next attempt (in ${formatDuration(delay)}) could not end before expiresAt ${toIso(task.expiresAt)}`,
          attempt,
          true,
          'retryable_error',
          seen,
        );
      }
      // The retrying index (as before) and the attempt's history entry, in one call.
      const entry = historyEntry('retryable_error', { ...seen, error: failure.message });
      await recordAttempt(client, keys, { jobId, entry, limit: HISTORY_LIMIT, retryAt: nextAttemptAt });
      report({
        result: 'retrying',
        error: failure.message,
        calledProvider: true,
        attemptResult: 'retryable_error',
        ...seen,
      });
      throw new RetryScheduledError(failure.message, delay);
    }
  }
}
