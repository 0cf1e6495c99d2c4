/**
 * `aftercall serve [--port N] [--host H]`: the HTTP API (src/http/server.ts) until SIGTERM
 * or SIGINT, then a clean close (requests in flight finish; new ones get 503). Without
 * API_KEYS it refuses to start, saying so (exit 1).
 */
import { startTracing } from '../tracing.js';
import { loadHttpConfig } from '../../http/environment.js';
import { buildApiServer } from '../../http/server.js';
import { createLogger } from '../../worker/logger.js';
import { integer } from '../args.js';
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'serve',
  synopsis: ['aftercall serve [--port 8080] [--host 0.0.0.0]'],
  summary: `The HTTP API: POST /v1/outcomes, status, dead letters, and signed receivers for
Vapi, Retell and ElevenLabs (/v1/platforms/*). Stateless; needs API_KEYS.`,
  options: { port: { type: 'string' }, host: { type: 'string' } },
  async run({ values }, context) {
    const port = integer('port', values.port, { min: 0, max: 65_535 });
    const config = context.config();
    const http = loadHttpConfig(context.io.env);
    if (port !== undefined) http.port = port;
    if (values.host) http.host = values.host;
    const logger = createLogger({ level: config.logLevel, name: 'aftercall-api' });
    // OpenTelemetry: the Node SDK with OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (cli/tracing.ts).
    const tracing = await startTracing(context.io.env, 'aftercall-api');
    const server = await buildApiServer({ config, http, logger });
    let url: string;
    try {
      url = await server.listen();
    } catch (error) {
      await server.close();
      const code = (error as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'EADDRINUSE'
          ? `cannot listen on ${http.host}:${http.port}: the port is in use (set HTTP_PORT or --port)`
          : `cannot listen on ${http.host}:${http.port}: ${(error as Error).message}`,
      );
    }
    logger.info({ url, routes: 'POST /v1/outcomes, /v1/platforms/*, /console' }, 'aftercall API listening');
    context.io.stdout.write(`aftercall API listening on ${url} (web console at ${url}/console)\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutdown requested');
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        context.signal?.removeEventListener('abort', onAbort);
        void server
          .close()
          .then(() => tracing.shutdown())
          .then(resolve);
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      const onAbort = () => stop('abort');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
      if (context.signal?.aborted) onAbort();
      else context.signal?.addEventListener('abort', onAbort, { once: true });
    });
    logger.flush();
    return 0;
  },
});
