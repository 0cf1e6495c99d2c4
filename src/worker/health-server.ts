/**
 * The HTTP endpoints of a worker process, on METRICS_PORT (default 9464):
 *   /metrics  Prometheus metrics (see metrics.ts)
 *   /healthz  200 while the process is alive (a liveness probe)
 *   /readyz   200 when Redis answers and the workers are running, 503 otherwise (a
 *             readiness probe: a pod that cannot reach Redis takes no traffic... and
 *             shows up in the dashboard)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  port: number;
  host?: string;
  registry: Registry;
  /** Resolves true when the process can do its work. */
  ready(): Promise<boolean>;
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const send = (status: number, contentType: string, body: string) => {
      response.writeHead(status, { 'content-type': contentType });
      response.end(body);
    };
    if (request.method !== 'GET') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/metrics') {
      options.registry
        .metrics()
        .then((text) => send(200, options.registry.contentType, text))
        .catch((error: Error) => send(500, 'text/plain', `metrics unavailable: ${error.message}\n`));
      return;
    }
    if (path === '/healthz') return send(200, 'application/json', '{"status":"ok"}\n');
    if (path === '/readyz') {
      options
        .ready()
        .catch(() => false)
        .then((ready) =>
          send(ready ? 200 : 503, 'application/json', `{"status":"${ready ? 'ready' : 'not ready'}"}\n`),
        );
      return;
    }
    send(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `METRICS_PORT ${options.port} is in use (another worker on this host?); set METRICS_PORT to a free port, or 0 to switch /metrics, /healthz and /readyz off`,
            )
          : error,
      ),
    );
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
