/**
 * What a platform receiver is: one file per voice platform (vapi.ts, retell.ts,
 * elevenlabs.ts), each saying how the platform signs its webhooks, which of its events
 * ends a call, and where in that event the call's facts are. Everything else (the route,
 * the mapping to an outcome, the enqueue, the rejected-events store) is shared, in
 * receivers.ts and mapping.ts. Adding a platform is one file plus one entry in PLATFORMS.
 *
 * A receiver never throws on a payload: whatever it cannot find is left undefined, and
 * the mapping reports it as a field error (the event is then kept as rejected).
 */
import type { HttpConfig } from '../environment.js';

export const PLATFORM_NAMES = ['vapi', 'retell', 'elevenlabs'] as const;
export type PlatformName = (typeof PLATFORM_NAMES)[number];

/** The facts of one finished call, as the platform reported them (not yet checked). */
export interface PlatformCall {
  callId: unknown;
  /** Epoch milliseconds, or undefined when the platform gave no usable end time. */
  endedAt: number | undefined;
  phone: unknown;
  summary: unknown;
  sentiment: unknown;
  /** The platform's extracted data (structured data, custom analysis, data collection). */
  fields: Record<string, unknown>;
  /** Where each fact was read, for field errors: `call.end_timestamp`, ... */
  sources: { callId: string; endedAt: string; phone: string; fields: string };
}

export type Verification = { ok: true } | { ok: false; reason: string };

export interface SignedRequest {
  /** Lower-case header names, as node:http gives them. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface PlatformReceiver {
  name: PlatformName;
  /** The event that reports a finished, analysed call; any other is acknowledged and ignored. */
  endEvent: string;
  /** Whether the platform's secret is configured (without it the route answers 404). */
  configured(config: HttpConfig): boolean;
  /** The variables that configure it, for the 404's message: `RETELL_API_KEY`. */
  configuredBy: string;
  /** Checks the request's credential against the raw body bytes. */
  verify(request: SignedRequest, config: HttpConfig, now: number): Verification;
  /** The event type of a verified payload. */
  eventOf(payload: unknown): string | undefined;
  callOf(payload: unknown): PlatformCall;
  /** For the OpenAPI description: the headers the platform signs with, and the scheme. */
  signature: { headers: string[]; description: string };
}

/** A header's single value (the first, when repeated). */
export function header(request: SignedRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Property access that never throws: `at(payload, 'call', 'call_id')`. */
export function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
