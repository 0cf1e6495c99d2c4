/**
 * `aftercall worker [--queues a,b] [--concurrency N] [--no-sweeper]`: one worker process
 * until SIGTERM or SIGINT, then a clean close (in-flight jobs finish or go back to Redis).
 */
import { taskTypes } from '../../tasks/catalog.js';
import { createLogger } from '../../worker/logger.js';
import { startWorker } from '../../worker/worker.js';
import { startTracing } from '../tracing.js';
import { choiceList, integer } from '../args.js';
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'worker',
  synopsis: [`aftercall worker [--queues ${taskTypes.slice(0, 2).join(',')}] [--concurrency N] [--no-sweeper]`],
  summary: `Run one worker process for the given task types (default: all that are on).
Concurrency is per queue. Stops cleanly on SIGTERM/SIGINT.`,
  options: { queues: { type: 'string' }, concurrency: { type: 'string' }, 'no-sweeper': { type: 'boolean' } },
  async run({ values }, context) {
    const queues = choiceList('queues', values.queues, taskTypes, 'task type');
    const concurrency = integer('concurrency', values.concurrency, { min: 1, max: 1000 });
    const config = context.config();
    const logger = createLogger({ level: config.logLevel });
    // OpenTelemetry: the Node SDK with OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set (cli/tracing.ts).
    const tracing = await startTracing(context.io.env, 'aftercall-worker');
    const worker = await startWorker({
      config,
      logger,
      ...(queues && { queues }),
      ...(concurrency && { concurrency }),
      ...(values['no-sweeper'] && { sweeper: false }),
    });
    await worker.ready;
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutdown requested');
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        context.signal?.removeEventListener('abort', onAbort);
        void worker.close().then(resolve);
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      const onAbort = () => stop('abort');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
      if (context.signal?.aborted) onAbort();
      else context.signal?.addEventListener('abort', onAbort, { once: true });
    });
    await tracing.shutdown();
    logger.flush();
    return 0;
  },
});
