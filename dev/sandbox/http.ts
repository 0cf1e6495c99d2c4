/**
 * HTTP plumbing of the sandbox: a request read whole (the fakes need the raw bytes, e.g.
 * to check a webhook signature), and an answer as plain data (status, headers, body) that
 * can be sent now, after a delay, or held, and that Resend's fake can remember and replay.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

export interface SandboxRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /**
   * When its headers arrived (epoch ms), before its body was read: the time a provider's
   * rate limit counts. Stamped at the server's request event, so that a body read over
   * later turns of a busy event loop does not move it.
   */
  arrivedAt: number;
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Larger request bodies are refused with 413 (Resend's own limit is 40 MB with attachments). */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

export class BodyTooLargeError extends Error {}

export function jsonAnswer(status: number, value: unknown, headers: Record<string, string> = {}): Answer {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(value),
  };
}

/** What a gateway in front of a provider answers: HTML, not the provider's JSON. */
export function gatewayAnswer(status: number, reason: string): Answer {
  return {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8' },
    body: `<html><head><title>${status} ${reason}</title></head><body><h1>${status} ${reason}</h1></body></html>\n`,
  };
}

/** A header's value; the first one when it was sent more than once. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Headers as a plain string record (repeated headers joined with `, `), e.g. for signature checks. */
export function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Percent-decodes a header value (aftercall's ASCII form of a key); the raw value when it is not valid percent-encoding. */
export function decodeKey(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export async function readRequest(
  request: IncomingMessage,
  limit = MAX_BODY_BYTES,
  arrivedAt = Date.now(),
): Promise<SandboxRequest> {
  const url = new URL(request.url ?? '/', 'http://sandbox');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) throw new BodyTooLargeError(`request body larger than ${limit} bytes`);
    chunks.push(buffer);
  }
  return {
    method: request.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    headers: request.headers,
    rawBody: Buffer.concat(chunks),
    arrivedAt,
  };
}

export function sendAnswer(response: ServerResponse, answer: Answer): void {
  if (response.destroyed || response.headersSent) return;
  response.writeHead(answer.status, { ...answer.headers, 'content-length': String(Buffer.byteLength(answer.body)) });
  response.end(answer.body);
}
