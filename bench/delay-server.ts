/**
 * The slow receiver of the I/O-bound benchmarks, in a process of its own:
 *   node <compiled delay-server.mjs> <delayMs>
 * Answers every request with 200 {"ok":true} `delayMs` after it has read the request's
 * body. It does not verify signatures. Plain JavaScript once the harness has stripped its
 * types (see worker-process.ts), driven over IPC like the worker: sends {event:'listening',
 * port}; answers mark, report {cpuMs} (CPU ms since the mark), timings (when each request
 * carrying an idempotency-key header arrived and was answered, for the latency breakdown)
 * and close.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChildMessage, Command } from './protocol.js';

const delayMs = Number(process.argv[2] ?? 100);
let markCpu = process.cpuUsage();
const send = (message: ChildMessage) => {
  if (process.connected) process.send?.(message);
};

const now = () => performance.timeOrigin + performance.now();
// [idempotency-key, arrived, replied] of each request since the mark (the latency breakdown).
let requests: [string, number, number][] = [];

const server = createServer((request, response) => {
  const arrived = now();
  const key = request.headers['idempotency-key'];
  request.resume();
  request.on('end', () => {
    setTimeout(() => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
      response.end('{"ok":true}');
      if (typeof key === 'string') requests.push([key, arrived, now()]);
    }, delayMs);
  });
});
// Workers keep their connections between rounds.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

server.listen(0, '127.0.0.1', () => send({ event: 'listening', port: (server.address() as AddressInfo).port }));

process.on('message', (message: Command) => {
  const { id, cmd } = message;
  if (cmd === 'mark') {
    markCpu = process.cpuUsage();
    requests = [];
    send({ reply: id });
  } else if (cmd === 'timings') {
    send({ reply: id, requests });
  } else if (cmd === 'report') {
    const cpu = process.cpuUsage(markCpu);
    send({ reply: id, cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (cmd === 'close') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
