/**
 * The life of one request to a fake provider, the same for Resend, Twilio and webhooks:
 *
 *   1. counted, and its faults drawn from the seeded generator (faults.ts);
 *   2. admitted by the fake: authentication, body and headers checked; a protocol error
 *      is answered at once (after the latency);
 *   3. a listed terminal recipient gets the provider's terminal error;
 *   4. a drawn rate limit or server error is answered as such; nothing is processed;
 *   5. accepted: the fake takes note of it before the latency (Resend marks its
 *      idempotency key as in flight here), then, after the latency, completes it: records
 *      the delivery and builds the answer;
 *   6. the answer is sent, or, for a drawn hang, held for `hangMs` (the client has
 *      usually given up by then; the delivery is recorded all the same).
 *
 * Closing the sandbox ends every held or delayed answer by closing its connection.
 */
import type { ServerResponse } from 'node:http';
import type { DeliveryLog, DeliveryProvider } from './delivery-log.js';
import { drawFaultPlan, isTerminalRecipient, type FaultConfig, type ServerErrorStatus } from './faults.js';
import { sendAnswer, type Answer, type SandboxRequest } from './http.js';
import type { Random } from './random.js';

export type Admission<Accepted> = { ok: true; value: Accepted } | { ok: false; answer: Answer };

export interface ProviderFake<Accepted> {
  readonly provider: DeliveryProvider;
  /** Authentication, body and header checks. */
  admit(request: SandboxRequest): Admission<Accepted>;
  /** The recipients to compare with `terminalRecipients`. */
  recipients(accepted: Accepted): (string | null | undefined)[];
  terminal(accepted: Accepted): Answer;
  rateLimited(retryAfterSeconds: number): Answer;
  serverError(status: ServerErrorStatus): Answer;
  /** Called before the latency; returns what completes the request after it. */
  accept(accepted: Accepted): () => Answer;
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
}

export async function runProviderRequest<Accepted>(
  fake: ProviderFake<Accepted>,
  request: SandboxRequest,
  response: ServerResponse,
  context: PipelineContext,
): Promise<void> {
  const { log, responder } = context;
  const faults = context.faults();
  const plan = drawFaultPlan(faults, context.random);
  log.countRequest(fake.provider);

  const admission = fake.admit(request);
  if (!admission.ok) return responder.sendAfter(response, plan.latencyMs, admission.answer);
  const accepted = admission.value;

  if (isTerminalRecipient(faults, fake.recipients(accepted))) {
    log.countFault('terminal');
    return responder.sendAfter(response, plan.latencyMs, fake.terminal(accepted));
  }
  if (plan.fault === 'rate_limit') {
    log.countFault('rateLimited');
    return responder.sendAfter(response, plan.latencyMs, fake.rateLimited(faults.retryAfterSeconds));
  }
  if (plan.fault === 'server_error') {
    log.countFault('serverErrors');
    return responder.sendAfter(response, plan.latencyMs, fake.serverError(plan.serverErrorStatus));
  }

  const complete = fake.accept(accepted);
  // A client that gave up during the latency does not stop the work: the request arrived.
  if (!(await responder.delay(plan.latencyMs))) {
    response.destroy();
    return;
  }
  const answer = complete();
  if (plan.fault === 'hang') {
    log.countFault('hung');
    responder.hold(response, faults.hangMs, answer);
    return;
  }
  sendAnswer(response, answer);
}
