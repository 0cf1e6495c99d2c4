/**
 * The life of one request to a fake provider, the same for Resend, Twilio and webhooks:
 *
 *   1. counted at its arrival time for its destination (resend, twilio, webhook:<type>),
 *      and its faults drawn from the seeded generator (faults.ts);
 *   2. a webhook destination listed as gone: 410 to everything; a destination in an
 *      outage: 503, the provider's own, to everything;
 *   3. the destination has a limit (rate-limits.ts) and this request is above it: 429 with
 *      the provider's body and headers; nothing is processed. From here on, a provider
 *      that states its limit (Resend, webhooks) adds the `ratelimit-*` headers to every
 *      answer;
 *   4. admitted by the fake: authentication, body and headers checked; a protocol error
 *      is answered at once (after the latency);
 *   5. a listed terminal recipient gets the provider's terminal error;
 *   6. a drawn rate limit or server error is answered as such; nothing is processed;
 *   7. accepted: the fake takes note of it before the latency (Resend marks its
 *      idempotency key as in flight here), then, after the latency, completes it: records
 *      the delivery and builds the answer;
 *   8. the answer is sent, or, for a drawn hang, held for `hangMs` (the client has
 *      usually given up by then; the delivery is recorded all the same).
 *
 * Every answer's status is added to the destination's traffic (traffic.ts) at the
 * request's arrival time; the refusals of steps 2, 3 and 6 are also kept in the delivery
 * log as rejections. Closing the sandbox ends every held or delayed answer by closing its
 * connection.
 */
import type { ServerResponse } from 'node:http';
import type { DeliveryLog, DeliveryProvider, Rejection } from './delivery-log.js';
import { destinationOf } from './destinations.js';
import {
  drawFaultPlan,
  isTerminalRecipient,
  limitFor,
  outageAt,
  type FaultConfig,
  type ServerErrorStatus,
} from './faults.js';
import { sendAnswer, type Answer, type SandboxRequest } from './http.js';
import type { Random } from './random.js';
import type { FixedWindowLimiter, LimitDecision } from './rate-limits.js';
import type { AnswerCause, TrafficLog } from './traffic.js';

export type Admission<Accepted> = { ok: true; value: Accepted } | { ok: false; answer: Answer };

export interface ProviderFake<Accepted> {
  readonly provider: DeliveryProvider;
  /** Authentication, body and header checks. */
  admit(request: SandboxRequest): Admission<Accepted>;
  /** The recipients to compare with `terminalRecipients`. */
  recipients(accepted: Accepted): (string | null | undefined)[];
  terminal(accepted: Accepted): Answer;
  /** A 429: drawn by chance (no decision), or over the destination's limit (the limiter's decision). */
  rateLimited(retryAfterSeconds: number, decision?: LimitDecision): Answer;
  serverError(status: ServerErrorStatus): Answer;
  /** The headers stating the limit on every answer, for a provider that sends them (Resend, webhooks). */
  limitHeaders?(decision: LimitDecision): Record<string, string>;
  /** `410 Gone`, for a receiver that can be removed (webhooks). */
  gone?(): Answer;
  /** The task's idempotency key from the request's headers (percent-decoded), for the rejection log. */
  idempotencyKeyOf(request: SandboxRequest): string | null;
  /**
   * Called before the latency, with the time the request arrived (the stamp the traffic log
   * counts); returns what completes the request after it.
   */
  accept(accepted: Accepted, arrivedAt: number): () => Answer;
  /** Forget any memory (Resend's idempotency keys). */
  reset?(): void;
}

/** Sends answers now, later, or never (on close); ends them all when the sandbox closes. */
export class Responder {
  private readonly closing = new AbortController();
  private readonly pending = new Set<{ timer: NodeJS.Timeout; finish: () => void }>();

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  /** Resolves true after `ms`, or false as soon as the sandbox closes. */
  delay(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.pending.delete(entry);
          resolve(true);
        }, ms),
        finish: () => resolve(false),
      };
      this.pending.add(entry);
    });
  }

  async sendAfter(response: ServerResponse, ms: number, answer: Answer): Promise<void> {
    if (await this.delay(ms)) sendAnswer(response, answer);
    else response.destroy();
  }

  /** Holds the answer for `ms`; gives up early when the client goes away or the sandbox closes. */
  hold(response: ServerResponse, ms: number, answer: Answer): void {
    if (response.destroyed || response.socket?.destroyed !== false) return;
    const entry = {
      timer: setTimeout(() => {
        this.pending.delete(entry);
        sendAnswer(response, answer);
      }, ms),
      finish: () => response.destroy(),
    };
    this.pending.add(entry);
    response.once('close', () => {
      if (this.pending.delete(entry)) clearTimeout(entry.timer);
    });
  }

  close(): void {
    this.closing.abort();
    for (const entry of [...this.pending]) {
      clearTimeout(entry.timer);
      this.pending.delete(entry);
      entry.finish();
    }
  }
}

export interface PipelineContext {
  faults: () => FaultConfig;
  random: Random;
  log: DeliveryLog;
  responder: Responder;
  now: () => number;
  limiter: FixedWindowLimiter;
  traffic: TrafficLog;
}

export async function runProviderRequest<Accepted>(
  fake: ProviderFake<Accepted>,
  request: SandboxRequest,
  response: ServerResponse,
  context: PipelineContext,
): Promise<void> {
  const { log, responder } = context;
  const { arrivedAt } = request;
  const destination = destinationOf(fake.provider, request.path);
  const faults = context.faults();
  const plan = drawFaultPlan(faults, context.random);
  log.countRequest(fake.provider);

  const counted = (answer: Answer, cause?: AnswerCause): Answer => {
    context.traffic.record(destination, arrivedAt, answer.status, cause);
    return answer;
  };
  const refused = (answer: Answer, reason: Rejection['reason']): Answer => {
    log.reject({
      provider: fake.provider,
      destination,
      receivedAt: new Date(arrivedAt).toISOString(),
      status: answer.status,
      reason,
      idempotencyKey: fake.idempotencyKeyOf(request),
    });
    return counted(answer, reason === 'limit' || reason === 'outage' ? reason : undefined);
  };

  if (fake.gone && faults.gone.includes(destination)) {
    log.countFault('gone');
    return responder.sendAfter(response, plan.latencyMs, refused(fake.gone(), 'gone'));
  }
  if (outageAt(faults, destination, arrivedAt)) {
    log.countFault('serverErrors');
    log.countFault('outage');
    return responder.sendAfter(response, plan.latencyMs, refused(fake.serverError(503), 'outage'));
  }

  const limit = limitFor(faults, destination);
  const decision = limit ? context.limiter.take(destination, limit, arrivedAt) : undefined;
  if (decision && !decision.allowed) {
    log.countFault('rateLimited');
    log.countFault('overLimit');
    return responder.sendAfter(
      response,
      plan.latencyMs,
      refused(fake.rateLimited(decision.resetSeconds, decision), 'limit'),
    );
  }
  const stated = decision && fake.limitHeaders ? fake.limitHeaders(decision) : undefined;
  // Answers are shared (Resend replays a remembered one): the headers go on a copy.
  const stating = (answer: Answer): Answer =>
    stated ? { ...answer, headers: { ...answer.headers, ...stated } } : answer;

  const admission = fake.admit(request);
  if (!admission.ok) return responder.sendAfter(response, plan.latencyMs, counted(stating(admission.answer)));
  const accepted = admission.value;

  if (isTerminalRecipient(faults, fake.recipients(accepted))) {
    log.countFault('terminal');
    return responder.sendAfter(response, plan.latencyMs, counted(stating(fake.terminal(accepted))));
  }
  if (plan.fault === 'rate_limit') {
    log.countFault('rateLimited');
    return responder.sendAfter(
      response,
      plan.latencyMs,
      refused(stating(fake.rateLimited(faults.retryAfterSeconds)), 'fault'),
    );
  }
  if (plan.fault === 'server_error') {
    log.countFault('serverErrors');
    return responder.sendAfter(
      response,
      plan.latencyMs,
      refused(stating(fake.serverError(plan.serverErrorStatus)), 'fault'),
    );
  }

  const complete = fake.accept(accepted, arrivedAt);
  // A client that gave up during the latency does not stop the work: the request arrived.
  if (!(await responder.delay(plan.latencyMs))) {
    response.destroy();
    return;
  }
  const answer = counted(stating(complete()));
  if (plan.fault === 'hang') {
    log.countFault('hung');
    responder.hold(response, faults.hangMs, answer);
    return;
  }
  sendAnswer(response, answer);
}
