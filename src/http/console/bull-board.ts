/**
 * bull-board (the queue view BullMQ users know) at /console/queues, behind the console's
 * session like every console page (read role at least).
 *
 * It is mounted read-only: every queue in `readOnlyMode` without retries, and the access
 * hook answers 405 to anything but GET under /console/queues. bull-board's actions (retry,
 * clean, remove, promote, pause, add) would go around aftercall: a dead letter is a job in
 * BullMQ's failed set, and retrying it there would skip the expiry check and the
 * dead-letter counts. Replay and purge are on the console's dead-letter page.
 *
 * The queues are BullMQ `Queue`s on the server's Redis connection with the fleet's key
 * prefix (`<prefix>:{<type>}:...`), one per task type plus the sweeper's maintenance queue;
 * `skipMetasUpdate` keeps them from writing anything. On a Redis Cluster the connection is
 * an ioredis Cluster, which BullMQ and bull-board (its INFO comes from every master) both
 * support; each queue lives in its own hash slot.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';
import { BOARD_PATH } from './access.js';

export interface BoardOptions {
  queues: readonly Queue[];
}

export const bullBoard: FastifyPluginAsync<BoardOptions> = async (app, options) => {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: options.queues.map(
      (queue) =>
        new BullMQAdapter(queue, {
          readOnlyMode: true,
          allowRetries: false,
          displayName: queue.name.replace(/^\{|\}$/g, ''),
        }),
    ),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'aftercall queues',
        miscLinks: [{ text: 'aftercall console', url: '/console' }],
        hideDocsLink: true,
      },
    },
  });
  await app.register(serverAdapter.registerPlugin(), { prefix: BOARD_PATH });
};
