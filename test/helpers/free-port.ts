/**
 * A free TCP port on loopback: the system picks one for a listener that is closed at once,
 * so a server started right after (a child process, a worker's /metrics) can bind it.
 */
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
