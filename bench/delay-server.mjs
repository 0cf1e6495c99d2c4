// The slow receiver of the I/O-bound benchmarks, in a process of its own:
//   node bench/delay-server.mjs <delayMs>
// Answers every request with 200 {"ok":true} `delayMs` after it has read the request's
// body. It does not verify signatures. Driven over IPC like bench/worker-process.mjs:
// sends {event:'listening', port}; answers mark, report {cpuMs} (CPU ms since the mark)
// and close.
import { createServer } from 'node:http';

const delayMs = Number(process.argv[2] ?? 100);
let markCpu = process.cpuUsage();
const send = (message) => {
  if (process.connected) process.send(message);
};

const server = createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    setTimeout(() => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
      response.end('{"ok":true}');
    }, delayMs);
  });
});
// Workers keep their connections between rounds.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

server.listen(0, '127.0.0.1', () => send({ event: 'listening', port: server.address().port }));

process.on('message', (message) => {
  const { id, cmd } = message;
  if (cmd === 'mark') {
    markCpu = process.cpuUsage();
    send({ reply: id });
  } else if (cmd === 'report') {
    const cpu = process.cpuUsage(markCpu);
    send({ reply: id, cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (cmd === 'close') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
