/**
 * A real HTTP receiver on loopback that verifies Standard Webhooks signatures and records
 * every delivery. Tests script its answers per request.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { WEBHOOK_SECRET } from './redis.js';

/** The JSON body of a task's webhook request. */
export interface TaskBody {
  type: string;
  idempotencyKey: string;
  conversationId: string;
  jobId: string;
  attempt: number;
  createdAt: string;
  expiresAt: string;
  payload: unknown;
}

export interface Receipt {
  path: string;
  webhookId: string;
  headers: IncomingHttpHeaders;
  body: TaskBody;
  receivedAt: number;
  /** When the request's headers arrived (before its body): the closest to when it was sent. */
  arrivedAt: number;
  signatureValid: boolean;
}

export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  /** Wait this long before answering. */
  delayMs?: number;
}

export interface WebhookReceiver {
  url: string;
  receipts: Receipt[];
  /** Decides the answer to each request; 200 by default. */
  answer: (receipt: Receipt) => Answer | Promise<Answer>;
  close(): Promise<void>;
}

export async function startReceiver(secret = WEBHOOK_SECRET): Promise<WebhookReceiver> {
  const verifier = new Webhook(secret);
  const receiver: WebhookReceiver = {
    url: '',
    receipts: [],
    answer: () => ({ status: 200 }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((request, response) => {
    const arrivedAt = Date.now();
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let signatureValid = true;
      try {
        verifier.verify(raw, request.headers as Record<string, string>);
      } catch {
        signatureValid = false;
      }
      const receipt: Receipt = {
        path: request.url ?? '/',
        webhookId: String(request.headers['webhook-id']),
        headers: request.headers,
        body: JSON.parse(raw) as TaskBody,
        receivedAt: Date.now(),
        arrivedAt,
        signatureValid,
      };
      receiver.receipts.push(receipt);
      const answer = await receiver.answer(receipt);
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      if (response.destroyed) return;
      response.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}

/**
 * Scripted answers: the receiver answers the requests of a scripted key (by default the
 * conversation id) with the script's answers in turn, counted per idempotency key, the last
 * one repeating once they run out; anything unscripted gets 200. Returns the scripts to fill.
 */
export function scriptAnswers(
  receiver: WebhookReceiver,
  keyOf: (receipt: Receipt) => string = (receipt) => receipt.body.conversationId,
): Map<string, Answer[]> {
  const scripts = new Map<string, Answer[]>();
  receiver.answer = (receipt) => {
    const script = scripts.get(keyOf(receipt));
    if (!script) return { status: 200 };
    const seen = receiver.receipts.filter((r) => r.body.idempotencyKey === receipt.body.idempotencyKey).length;
    return script[Math.min(seen - 1, script.length - 1)]!;
  };
  return scripts;
}
