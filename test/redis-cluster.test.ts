/**
 * aftercall on real Redis Clusters (started from the machine's redis-server, one per
 * describe block):
 * - the issue's own reproduction: `aftercall enqueue --shift-to-now examples/booked.json`
 *   with REDIS_CLUSTER_NODES exits 0 (it used to fail with MOVED);
 * - an enqueue sends each task's script to the shard of its type's slot, every shard's
 *   commands written before any reply arrives (proxies on the wire, one per node);
 * - the six types spread over three shards and every shard works (its command counters);
 * - a worker's blocking connection, closed while a command is being sent on it, ends (BullMQ's
 *   cluster recovery reconnected it and a worker's close() waited for ever);
 * - with a replica per master, SIGKILL of a master under load: the producer and the
 *   worker go on without a restart, and the acknowledged tasks lost to asynchronous
 *   replication are counted; with REDIS_WAIT_REPLICAS=1 none is.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import calculateSlot from 'cluster-key-slot';
import { Worker } from 'bullmq';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/environment.js';
import { conversationStatus } from '../src/ops/status.js';
import { createProducer, type EnqueueResult } from '../src/producer/producer.js';
import { stopBlockingRecovery } from '../src/redis/bullmq-compat.js';
import { createRedisConnection, type RedisTarget } from '../src/redis/connection.js';
import { typeKeys } from '../src/redis/keys.js';
import { taskTypes } from '../src/tasks/catalog.js';
import { startWorker } from '../src/worker/worker.js';
import { BIN } from './helpers/child-worker.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { testEnv, uniquePrefix } from './helpers/redis.js';
import { startCluster, type RedisNode, type TestCluster } from './helpers/redis-topology.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { waitUntil } from './helpers/wait.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function commandCalls(node: RedisNode): Promise<number> {
  const client = node.connect();
  try {
    await client.connect();
    const stats = await client.info('commandstats');
    return [...stats.matchAll(/calls=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  } finally {
    client.disconnect();
  }
}

describe('a 3-master cluster', () => {
  let cluster: TestCluster;
  let target: RedisTarget;
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3 });
    target = { mode: 'cluster', nodes: cluster.urls };
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('`aftercall enqueue --shift-to-now examples/booked.json` works with REDIS_CLUSTER_NODES', async () => {
    const prefix = uniquePrefix('cluster-cli');
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = spawn(process.execPath, [BIN, 'enqueue', '--shift-to-now', 'examples/booked.json'], {
          cwd: root,
          env: {
            PATH: process.env.PATH ?? '',
            REDIS_CLUSTER_NODES: cluster.urls.join(','),
            AFTERCALL_PREFIX: prefix,
            LOG_LEVEL: 'silent',
          },
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk));
        child.stderr.on('data', (chunk: Buffer) => (err += chunk));
        child.on('close', (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
      },
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as EnqueueResult;
    expect(result.tasks.length).toBeGreaterThanOrEqual(3);
    expect(result.tasks.every((task) => task.created)).toBe(true);
  });

  it('sends each task to the shard of its type, all shards written before any reply (one round trip each)', async () => {
    const primaries = await cluster.primaries();
    const proxies = new Map<string, TcpProxy>();
    for (const node of cluster.nodes)
      proxies.set(`127.0.0.1:${node.port}`, await startTcpProxy({ host: '127.0.0.1', port: node.port }));
    // Every node address the cluster announces is reached through its proxy.
    const connection = new Cluster([{ host: '127.0.0.1', port: primaries[0]!.port }], {
      natMap: Object.fromEntries(
        [...proxies].map(([address, proxy]) => [address, { host: '127.0.0.1', port: Number(new URL(proxy.url).port) }]),
      ),
      redisOptions: { maxRetriesPerRequest: 0 },
    });
    const prefix = uniquePrefix('cluster-wire');
    const producer = createProducer({ connection, prefix });
    try {
      await producer.conversationEnded(bookedOutcome('wire-warm-up', Date.now(), { ticket: { id: 'T' } }));
      for (const id of ['wire-1', 'wire-2', 'wire-3']) {
        const from = new Map([...proxies].map(([address, proxy]) => [address, proxy.chunks.length]));
        const result = await producer.conversationEnded(bookedOutcome(id, Date.now(), { ticket: { id: 'T' } }));
        expect(result.tasks).toHaveLength(5);
        const shardsOfPlan = new Set(
          await Promise.all(
            result.tasks.map(
              async (task) => (await cluster.primaryOf(calculateSlot(typeKeys(prefix, task.type).base))).port,
            ),
          ),
        );
        const used = [...proxies].filter(([address, proxy]) => proxy.chunks.length > from.get(address)!);
        expect(new Set(used.map(([address]) => Number(address.split(':')[1])))).toEqual(shardsOfPlan);
        expect(shardsOfPlan.size).toBeGreaterThan(1);
        for (const [address, proxy] of used) expect(proxy.roundTrips(from.get(address)!), address).toBe(1);
        // Every shard's commands went out before the first reply came back from any of them.
        const chunks = used.flatMap(([address, proxy]) => proxy.chunks.slice(from.get(address)!));
        const lastWrite = Math.max(...chunks.filter((chunk) => chunk.direction === 'up').map((chunk) => chunk.at));
        const firstReply = Math.min(...chunks.filter((chunk) => chunk.direction === 'down').map((chunk) => chunk.at));
        expect(lastWrite).toBeLessThanOrEqual(firstReply);
      }
    } finally {
      await producer.close();
      connection.disconnect();
      for (const proxy of proxies.values()) await proxy.close();
    }
  });

  it('spreads the six types over the three shards, and every shard does work', async () => {
    const primaries = await cluster.primaries();
    expect(primaries).toHaveLength(3);
    const shardOf = new Map(
      await Promise.all(
        taskTypes.map(
          async (type) => [type, (await cluster.primaryOf(calculateSlot(typeKeys('any', type).base))).port] as const,
        ),
      ),
    );
    // One type is one slot is one shard; the six types land on all three shards.
    expect(new Set(shardOf.values()).size).toBe(3);
    const before = await Promise.all(primaries.map(commandCalls));
    const receiver = await startReceiver();
    const prefix = uniquePrefix('cluster-spread');
    const config = loadConfig(
      testEnv(prefix, receiver.url, { REDIS_URL: '', REDIS_CLUSTER_NODES: cluster.urls.join(',') }),
    );
    const worker = await startWorker({ config, concurrency: 4 });
    const producer = createProducer({ redis: config.redis, prefix });
    const ops = createRedisConnection('worker', { redis: config.redis });
    try {
      await worker.ready;
      const now = Date.now();
      for (let index = 0; index < 20; index += 1) {
        await producer.conversationEnded(
          bookedOutcome(`spread-${index}`, now, {
            ticket: { id: `T-${index}` },
            callback: { reason: 'call me', priority: 'normal' },
          } as never),
        );
      }
      await waitUntil(
        () => receiver.receipts.length,
        (count) => count >= 20 * 3,
        'deliveries of the immediate tasks',
      );
      const statuses = await conversationStatus(ops, prefix, 'spread-0');
      expect(new Set(statuses.map((entry) => entry.type)).size).toBeGreaterThanOrEqual(5);
    } finally {
      await worker.close();
      await producer.close();
      ops.disconnect();
      await receiver.close();
    }
    const after = await Promise.all(primaries.map(commandCalls));
    for (const [index, node] of primaries.entries())
      expect(after[index]! - before[index]!, `commands on shard ${node.port}`).toBeGreaterThan(50);
  });

  // Regression: a fleet worker's close() on a cluster hung for ever in about half the quick runs of
  // bench/redis-cluster.ts (2026-12-01). Closing a BullMQ worker disconnects its blocking Cluster
  // client and waits for its `end`; a BZPOPMIN sent meanwhile met an empty node pool, BullMQ's
  // cluster recovery reconnected the client, and `end` never came. The race made on purpose:
  // disconnect, then a BZPOPMIN in the same tick. worker.ts calls stopBlockingRecovery before close.
  it("a worker's blocking connection ends when closed mid-command once stopBlockingRecovery ran (close() hung without)", async () => {
    const ended = async (stop: boolean) => {
      const client = createRedisConnection('worker', { redis: target });
      const worker = new Worker('{close-race}', async () => undefined, {
        connection: client,
        prefix: uniquePrefix('cluster-close'),
        autorun: false,
      });
      let blocking: Cluster | undefined;
      try {
        await worker.waitUntilReady();
        if (stop) expect(stopBlockingRecovery(worker), 'a blocking Cluster connection to stop').toBe(true);
        blocking = await (worker as unknown as { backend: { blockingClient: Promise<Cluster> } }).backend
          .blockingClient;
        const end = new Promise<boolean>((resolve) => blocking!.once('end', () => resolve(true)));
        blocking.disconnect();
        void blocking.bzpopmin('{close-race}:marker', 1).catch(() => undefined);
        return await Promise.race([end, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3_000))]);
      } finally {
        await Promise.race([worker.close(true), new Promise((resolve) => setTimeout(resolve, 3_000))]);
        blocking?.disconnect();
        client.disconnect();
      }
    };
    // The control shows the race is really made here: BullMQ alone reconnects, no `end`.
    expect(await ended(false), 'BullMQ without stopBlockingRecovery').toBe(false);
    expect(await ended(true), 'after stopBlockingRecovery').toBe(true);
  });
});

describe('failover of a 3-master cluster with a replica each', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1_000 });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  /**
   * Enqueues at a steady pace while the master of update_crm's slot is SIGKILLed, then
   * waits for the fleet to drain. Returns the acknowledged tasks and how many were lost:
   * acknowledged (created) but neither delivered nor anywhere in Redis afterwards.
   */
  async function killMasterUnderLoad(waitReplicas: number) {
    const receiver = await startReceiver();
    const prefix = uniquePrefix(`failover-w${waitReplicas}`);
    const config = loadConfig(
      testEnv(prefix, receiver.url, {
        REDIS_URL: '',
        REDIS_CLUSTER_NODES: cluster.urls.join(','),
        REDIS_WAIT_REPLICAS: String(waitReplicas),
        PRODUCER_TIMEOUT: '1s',
      }),
    );
    const worker = await startWorker({ config, concurrency: 8 });
    await worker.ready;
    const producer = createProducer({
      redis: config.redis,
      prefix,
      waitReplicas: config.waitReplicas,
      timeoutMs: config.producerTimeoutMs,
    });
    const ops = createRedisConnection('worker', { redis: config.redis });
    const acknowledged: { conversationId: string; type: string; idempotencyKey: string }[] = [];
    let refused = 0;
    let running = true;
    const load = (async () => {
      for (let index = 0; running; index += 1) {
        const conversationId = `fo-${index}`;
        await producer
          .conversationEnded(
            resolvedOutcome(conversationId, Date.now(), { customer: { id: 'c', email: `c${index}@example.com` } }),
          )
          .then(
            (result) => {
              for (const task of result.tasks) if (task.created) acknowledged.push({ conversationId, ...task });
            },
            () => {
              refused += 1;
            },
          );
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      await waitUntil(
        () => acknowledged.length,
        (count) => count >= 150,
        'load before the kill',
      );
      const victim = await cluster.primaryOf(calculateSlot(typeKeys(prefix, 'update_crm').base));
      const killedAt = acknowledged.length;
      await victim.kill('SIGKILL');
      // Its replica takes over; then the killed node comes back (as a pod would) as the new
      // replica. Without a replica, REDIS_WAIT_REPLICAS=1 refuses to acknowledge on that shard.
      const promoted = await waitUntil(
        () => cluster.primaryOf(calculateSlot(typeKeys(prefix, 'update_crm').base)).catch(() => victim),
        (primary) => primary !== victim,
        'a replica to take over',
        30_000,
      );
      await victim.start();
      // Load goes on through the failover: tasks of the failed shard acknowledged afterwards by the same producer.
      await waitUntil(
        () => acknowledged.slice(killedAt).filter((task) => task.type === 'update_crm').length,
        (count) => count >= 100,
        'update_crm tasks acknowledged after the failover',
        60_000,
      );
      running = false;
      await load;
      expect(promoted).not.toBe(victim);
      // The same worker (no restart) drains every queue.
      const delivered = () => new Set(receiver.receipts.map((receipt) => receipt.body.idempotencyKey));
      await waitUntil(
        async () => {
          const got = delivered();
          const missing = acknowledged.filter((task) => !got.has(task.idempotencyKey));
          const present = await Promise.all(
            missing.map(async (task) =>
              (await conversationStatus(ops, prefix, task.conversationId)).some(
                (entry) => entry.type === task.type && entry.state !== 'completed',
              ),
            ),
          );
          return present.filter(Boolean).length;
        },
        (stillQueued) => stillQueued === 0,
        'the fleet to drain after the failover',
        60_000,
      );
      const got = delivered();
      const lost = acknowledged.filter((task) => !got.has(task.idempotencyKey));
      const afterKill = acknowledged.slice(killedAt);
      expect(afterKill.filter((task) => got.has(task.idempotencyKey)).length).toBeGreaterThan(100);
      return { acknowledged: acknowledged.length, lost: lost.length, refused };
    } finally {
      running = false;
      await load;
      await worker.close();
      await producer.close();
      ops.disconnect();
      await receiver.close();
    }
  }

  it('SIGKILL of a master under load: the fleet goes on without restarts; REDIS_WAIT_REPLICAS=1 loses nothing acknowledged', async () => {
    const asynchronous = await killMasterUnderLoad(0);
    console.info(
      `failover, asynchronous replication: ${asynchronous.acknowledged} tasks acknowledged, ${asynchronous.lost} lost, ${asynchronous.refused} outcomes refused during the failover`,
    );
    // The killed master is back as a replica of the promoted one; then kill the promoted one.
    await cluster.waitHealthy();
    const waited = await killMasterUnderLoad(1);
    console.info(
      `failover, REDIS_WAIT_REPLICAS=1: ${waited.acknowledged} tasks acknowledged, ${waited.lost} lost, ${waited.refused} outcomes refused during the failover`,
    );
    expect(waited.lost).toBe(0);
  }, 240_000);
});
