/**
 * Tracing, on @opentelemetry/api only: no SDK is loaded or required by the library. Without
 * an SDK registered (the voice agent's, or the one `aftercall worker` / `aftercall serve`
 * start when OTEL_EXPORTER_OTLP_ENDPOINT is set: cli/tracing.ts), every call here is the
 * API's no-op and costs next to nothing.
 *
 * The trace goes from the call to the provider:
 *   producer   `conversationEnded` inside an active trace stores the W3C trace context
 *              (`traceparent`, `tracestate`) of its span `aftercall.enqueue` on each job (job
 *              data `trace`);
 *   worker     one span per attempt, `aftercall.deliver <type>` (kind consumer), the job's
 *              stored context as parent, linked to the task's earlier attempts (their span ids
 *              are kept in the attempt history), errors recorded;
 *   provider   each HTTP request to a provider (webhook, Resend, Twilio) as a child span
 *              (kind client, HTTP client semantic conventions: `clientRequestSpan`), and
 *              each carries `traceparent`.
 * The context is written and read here (not through the global propagator), so a job
 * carries it whichever propagator an application registers.
 */
import {
  context,
  type Context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type TraceState,
  createTraceState,
} from '@opentelemetry/api';

export const TRACER_NAME = 'aftercall';
export const tracer = () => trace.getTracer(TRACER_NAME);

/**
 * Whether spans are recorded: an SDK is registered as the global tracer provider. False while
 * the global provider is the API's proxy with no delegate, where every span is a no-op (and
 * `trace.getTracer` makes a new proxy tracer at each call). Read at each call, so an SDK
 * registered later is seen at once; it costs a property read and one call.
 */
export function tracingEnabled(): boolean {
  const provider = trace.getTracerProvider() as { getDelegateTracer?: (name: string) => unknown };
  return typeof provider.getDelegateTracer !== 'function' || provider.getDelegateTracer(TRACER_NAME) !== undefined;
}

/** The W3C trace context a job carries. */
export interface StoredTraceContext {
  traceparent: string;
  tracestate?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The `traceparent` (and `tracestate`) of a span context; undefined when it is not valid. */
export function traceContextOf(ctx: Context = context.active()): StoredTraceContext | undefined {
  const span = trace.getSpanContext(ctx);
  if (!span || !trace.isSpanContextValid(span)) return undefined;
  const flags = (span.traceFlags & 0xff).toString(16).padStart(2, '0');
  const state = span.traceState?.serialize();
  return { traceparent: `00-${span.traceId}-${span.spanId}-${flags}`, ...(state && { tracestate: state }) };
}

/** A context whose remote parent is the stored trace context; the root context when there is none. */
export function contextFrom(stored: StoredTraceContext | undefined): Context {
  const match = stored && TRACEPARENT.exec(stored.traceparent);
  if (!match) return ROOT_CONTEXT;
  let traceState: TraceState | undefined;
  if (stored.tracestate) traceState = createTraceState(stored.tracestate);
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: Number.parseInt(match[3]!, 16),
    isRemote: true,
    ...(traceState && { traceState }),
  });
}

/** Links to earlier attempts of a task, from their span ids (same trace). */
export function linksTo(traceId: string | undefined, spanIds: readonly string[]): Link[] {
  if (!traceId) return [];
  return spanIds
    .filter((spanId) => /^[0-9a-f]{16}$/.test(spanId))
    .map((spanId) => ({
      context: { traceId, spanId, traceFlags: 1, isRemote: true },
      attributes: { 'aftercall.link': 'earlier_attempt' },
    }));
}

/** Records an error on a span: an exception event and the error status. */
export function recordError(span: Span, error: unknown, message?: string): void {
  span.recordException(error instanceof Error ? error : new Error(String(error)));
  span.setStatus({ code: SpanStatusCode.ERROR, message: message ?? (error as Error)?.message ?? String(error) });
}

/**
 * What one HTTP request came to: the status of its answer, or, when no answer came and the
 * client reported it without throwing (the resend SDK returns its network errors), the
 * error's type.
 */
export type ClientOutcome = number | { errorType: string; message?: string };

/**
 * Runs one HTTP request as a client span, following the HTTP client semantic conventions:
 *   span name                  the method (`POST`), kind client, the active span as parent;
 *   http.request.method        the method, upper case;
 *   url.full                   scheme, host, port and path: no query (Twilio's carries phone
 *                              numbers), no user or password;
 *   server.address, .port      the host and its port (443 / 80 when the URL names none);
 *   http.response.status_code  the answer's status;
 *   error.type                 the status as text for 400 and above; when no answer came, the
 *                              error's code (ECONNREFUSED, ECONNABORTED) or name (TimeoutError).
 * Status ERROR for 400 and above and for a request that got no answer, with the exception
 * recorded when one was thrown. `send` gets the headers to add (`traceparent`, `tracestate`
 * of the client span) and performs the request; `outcome` reads its result. Used by every
 * provider: the webhook's node:http request, the twilio SDK's HTTP client, the resend SDK's
 * fetch (providers/*).
 */
export async function clientRequestSpan<T>(
  method: string,
  url: URL,
  send: (headers: Record<string, string>) => Promise<T>,
  outcome: (result: T) => ClientOutcome,
): Promise<T> {
  const verb = method.toUpperCase();
  const span = tracer().startSpan(verb, {
    kind: SpanKind.CLIENT,
    attributes: {
      'http.request.method': verb,
      'url.full': `${url.origin}${url.pathname}`,
      'server.address': url.hostname,
      'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    },
  });
  const headers: Record<string, string> = {};
  const stored = traceContextOf(trace.setSpan(context.active(), span));
  if (stored) {
    headers.traceparent = stored.traceparent;
    if (stored.tracestate) headers.tracestate = stored.tracestate;
  }
  try {
    const result = await send(headers);
    const answer = outcome(result);
    if (typeof answer === 'number') {
      span.setAttribute('http.response.status_code', answer);
      if (answer >= 400) {
        span.setAttribute('error.type', String(answer));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    } else {
      span.setAttribute('error.type', answer.errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, ...(answer.message && { message: answer.message }) });
    }
    return result;
  } catch (error) {
    const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
    span.setAttribute(
      'error.type',
      typeof code === 'string' && code ? code : typeof name === 'string' && name ? name : '_OTHER',
    );
    recordError(span, error);
    throw error;
  } finally {
    span.end();
  }
}
