/**
 * `aftercall/producer` is what a voice-agent server imports: the outcome contract, the task
 * catalog, the producer and its metrics, ioredis and BullMQ's Queue. It must load nothing of
 * the worker side: no worker (its metrics and health server live in worker/), no delivery
 * code, no Resend or Twilio SDK, no HTTP framework, no CLI and no dev/ (sandbox) code.
 *
 * Checked on the real module graph: a fresh `node` imports the built entry, by path and by
 * the package's own name through package.json's exports, and lists every module it loaded
 * (ES modules through a resolve hook, CommonJS ones from require.cache; see
 * helpers/import-in-child.ts). The full package (`aftercall`), imported the same way, does
 * load the worker side: that shows the recorder and the patterns below see what they look for.
 * Needs dist/ built (`npm test` builds first).
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Queue as BullmqQueue, DelayedError } from 'bullmq';
import { Queue, movedOutOfActive } from '../src/redis/bullmq-compat.js';
import { importInChild, relativeToPackage } from './helpers/import-in-child.js';

/** What the producer entry must not load, as paths relative to the package root. */
const FORBIDDEN: Array<[what: string, path: RegExp]> = [
  ["BullMQ's Worker class", /(^|\/)node_modules\/bullmq\/dist\/(cjs|esm)\/classes\/worker\.js$/],
  ['the Resend SDK', /(^|\/)node_modules\/resend\//],
  ['the Twilio SDK', /(^|\/)node_modules\/twilio\//],
  ['fastify', /(^|\/)node_modules\/(fastify|fastify-[^/]+|@fastify\/[^/]+)\//],
  ['hono', /(^|\/)node_modules\/(hono|@hono\/[^/]+)\//],
  ['the worker (its metrics and health server included)', /^dist\/src\/worker\//],
  ['delivery (routing and providers)', /^dist\/src\/delivery\//],
  ['the HTTP API', /^dist\/src\/http\//],
  ['the CLI', /^dist\/src\/cli\//],
  ['dev/ (sandbox, demo, synthetic load)', /^dist\/dev\//],
];

/** What it does load: proof that the list covers ES modules (ours) and CommonJS ones (ioredis, BullMQ). */
const EXPECTED = [
  'dist/src/producer/index.js',
  'dist/src/producer/producer.js',
  'dist/src/tasks/catalog.js',
  'node_modules/ioredis/built/Redis.js',
  'node_modules/bullmq/dist/cjs/classes/queue.js',
];

const offending = (modules: string[]) =>
  FORBIDDEN.flatMap(([what, path]) => {
    const found = modules.filter((module) => path.test(module));
    return found.length ? [`${what}: ${found.slice(0, 5).join(', ')}${found.length > 5 ? ', ...' : ''}`] : [];
  });

describe('the aftercall/producer entry point', () => {
  for (const specifier of ['./dist/src/producer/index.js', 'aftercall/producer']) {
    it(`import('${specifier}') loads no worker, delivery, provider SDK, HTTP framework, CLI or dev/ code`, async () => {
      const { modules } = await importInChild(specifier, { record: true });
      const loaded = relativeToPackage(modules!);
      for (const module of EXPECTED) expect(loaded, `${module} loaded`).toContain(module);
      expect(offending(loaded)).toEqual([]);
    }, 60_000);
  }

  it('the full package, imported the same way, does load the worker side (the check above can fail)', async () => {
    // The provider SDKs may be loaded only when a provider is configured; the worker is not.
    const { modules } = await importInChild('aftercall', { record: true });
    const found = offending(relativeToPackage(modules!)).map((line) => line.slice(0, line.indexOf(':')));
    expect(found).toEqual(
      expect.arrayContaining([
        "BullMQ's Worker class",
        'the worker (its metrics and health server included)',
        'delivery (routing and providers)',
      ]),
    );
  }, 60_000);
});

describe("BullMQ's classes taken from their own modules (redis/bullmq-compat.ts)", () => {
  // The producer takes Queue from BullMQ's classes/queue.js, not from its index, which also
  // loads the Worker class and everything it needs. Those are BullMQ's internal paths: an
  // upgrade that moves them fails here, and must hand out the very classes the index does,
  // or the worker side (index) and the producer side (deep paths) would hold two copies.
  it('are the classes BullMQ exports from its index', () => {
    expect(Queue).toBe(BullmqQueue);
    // The dead-letter convention: the worker's DelayedError must be the one BullMQ's Worker checks for.
    expect(movedOutOfActive('moved')).toBeInstanceOf(DelayedError);
    const require = createRequire(import.meta.url);
    expect(require('bullmq').Queue).toBe(Queue);
  });
});
