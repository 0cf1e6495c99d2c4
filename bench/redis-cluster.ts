/**
 * Redis Cluster: what running on a cluster costs and buys, on private servers started from
 * the machine's redis-server (test/helpers/redis-topology.ts), all in one run:
 * - fleet throughput on a 1-shard cluster against a 3-shard cluster (one in-process worker
 *   serving every type, deliveries answered at once), with the CPU each shard used;
 * - the ceiling of one type: one type is one slot is one shard, so its jobs/s on one shard
 *   is the most that type can do however many shards there are;
 * - Redis commands per task (enqueue + delivery, every primary's INFO commandstats) on the
 *   3-shard cluster against a standalone server, goal <= 1.1x;
 * - enqueue p99 (sequential five-task outcomes) on the cluster against standalone, and on a
 *   cluster with a replica per master with REDIS_WAIT_REPLICAS=1.
 * The machine has 2 cores shared by the shards, the worker and the producer: the 3-shard
 * ratio shows what the shards cost here, not what they would give on their own cores.
 */
import { Redis } from 'ioredis';
import type { DeliveryPort } from '../src/contract/delivery-port.js';
import { loadConfig } from '../src/config/environment.js';
import { createProducer, type ConversationOutcome } from '../src/index.js';
import { createRedisConnection, type RedisTarget } from '../src/redis/connection.js';
import { readFleetState } from '../src/redis/fleet-state.js';
import { taskTypes, type TaskType } from '../src/tasks/catalog.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { bookedOutcome } from '../test/helpers/outcomes.js';
import { startPrivateRedis } from '../test/helpers/redis-server.js';
import { testEnv } from '../test/helpers/redis.js';
import { startCluster, type RedisNode } from '../test/helpers/redis-topology.js';
import { acrossRounds, log, summarize, type Benchmark, type Goal, type Spread } from './lib.js';
import { fmt, measuredAt, range, verdict } from './report.js';

const outcome = (id: string, now: number): ConversationOutcome =>
  bookedOutcome(id, now, {
    ticket: { id: `T-${id}`, status: 'open' },
    callback: { reason: 'call me back', priority: 'normal' },
  } as Partial<ConversationOutcome>);

/** Delivers at once: the benchmark measures the queue machinery, not a provider. */
const instant: DeliveryPort = { provider: 'bench', deliver: async () => ({ provider: 'bench', status: 200 }) };
const ports = Object.fromEntries(taskTypes.map((type) => [type, instant])) as Record<TaskType, DeliveryPort>;

interface Server {
  nodes: RedisNode[];
  target: RedisTarget;
}

/**
 * Every wait of this benchmark goes through here: it fails after `seconds` naming what it
 * waited for (a quick run's every step takes well under its bound), never hangs a run.
 */
async function within<T>(seconds: number, what: string | (() => string), work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`redis-cluster: no end after ${seconds} s waiting for ${typeof what === 'string' ? what : what()}`),
        ),
      seconds * 1_000,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function statsOf(node: RedisNode): Promise<{ calls: number; cpuSeconds: number }> {
  const client = node.connect();
  try {
    const [commands, cpu] = await within(
      10,
      `INFO commandstats and cpu of the node on port ${node.port}`,
      client.connect().then(() => Promise.all([client.info('commandstats'), client.info('cpu')])),
    );
    let calls = 0;
    for (const [, command, count] of commands.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
      if (!/^(info|config|cluster|client|ping|hello|command|select|readonly)/.test(command!)) calls += Number(count);
    const user = Number(/used_cpu_user:([\d.]+)/.exec(cpu)?.[1] ?? 0);
    const sys = Number(/used_cpu_sys:([\d.]+)/.exec(cpu)?.[1] ?? 0);
    return { calls, cpuSeconds: user + sys };
  } finally {
    client.disconnect();
  }
}

/** How long a drain of `tasks` may take: 60 s plus 10 ms a task (a quick run's 400 drain in about a second, the full run's 4,000 in seconds). */
const drainSeconds = (tasks: number) => 60 + Math.ceil(tasks / 100);

/** Enqueues `conversations` outcomes, then drains them with one worker; jobs/s of the drain and Redis' counters. */
async function fleetRun(server: Server, conversations: number, types: readonly TaskType[], tag: string) {
  const prefix = `bench-cluster-${tag}-${process.pid}`;
  const env = testEnv(prefix, 'http://127.0.0.1:9/unused', {
    ...(server.target.mode === 'cluster'
      ? { REDIS_URL: '', REDIS_CLUSTER_NODES: server.target.nodes.join(',') }
      : { REDIS_URL: (server.target as { url: string }).url }),
    WORKER_CONCURRENCY: '50',
  });
  const config = loadConfig(env);
  const skipped = taskTypes.filter((type) => !types.includes(type));
  const producer = createProducer({
    redis: config.redis,
    prefix,
    // Scheduled types run at once here; types outside the run are switched off.
    tasks: {
      ...Object.fromEntries(skipped.map((type) => [type, { enabled: false }])),
      follow_up_survey: { enabled: types.includes('follow_up_survey'), settings: { delay: 0 } },
    },
  });
  let worker: FleetWorker | undefined;
  let before: { calls: number; cpuSeconds: number }[] = [];
  let tasks = 0;
  let done = 0;
  let seconds = 0;
  try {
    before = await Promise.all(server.nodes.map(statsOf));
    const now = Date.now();
    for (let start = 0; start < conversations; start += 50) {
      // (each conversationEnded has the producer's own deadline too)
      const batch = await within(
        30,
        `${tag}: enqueueing conversations ${start}..${start + 49}`,
        Promise.all(
          Array.from({ length: Math.min(50, conversations - start) }, (_, i) =>
            producer.conversationEnded(outcome(`${tag}-${start + i}`, now)),
          ),
        ),
      );
      tasks += batch.reduce(
        (sum, result) => sum + result.tasks.filter((task) => Date.parse(task.runAt) <= Date.now()).length,
        0,
      );
    }
    let finished: () => void = () => undefined;
    const drained = new Promise<void>((resolve) => (finished = resolve));
    const started = performance.now();
    worker = await within(
      30,
      `${tag}: the worker to start`,
      startWorker({
        config,
        queues: types,
        ports,
        sweeper: false,
        metricsPort: 0,
        onOutcome: (event) => {
          if (event.result === 'completed' && ++done >= tasks) finished();
        },
      }),
    );
    // Drained: every immediate task completed, or nothing waiting or active any more (a task
    // left scheduled is not throughput). A drain that does neither fails the run, naming
    // what each queue still held when it gave up.
    const ops = createRedisConnection('worker', { redis: config.redis });
    let polling = true;
    let last = 'no queue state read yet';
    const idle = (async () => {
      while (polling) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        const state = await readFleetState(ops, prefix);
        last = types.map((type) => `${type} ${JSON.stringify(state.jobs[type])}`).join(', ');
        if (done > 0 && types.every((type) => state.jobs[type].waiting + state.jobs[type].active === 0)) return;
      }
    })();
    try {
      await within(
        drainSeconds(tasks),
        () => `${tag}: ${tasks} tasks to complete (${done} completed; queues: ${last})`,
        Promise.race([drained, idle]),
      );
    } finally {
      polling = false;
      ops.disconnect();
    }
    seconds = (performance.now() - started) / 1000;
  } finally {
    // Closed on a failure too: a worker left running reconnects forever and holds the run.
    if (worker) await within(40, `${tag}: the worker to close`, worker.close());
    await within(10, `${tag}: the producer to close`, producer.close());
  }
  const after = await Promise.all(server.nodes.map(statsOf));
  return {
    tasks,
    done,
    jobsPerSecond: done / seconds,
    commandsPerTask: after.reduce((sum, stat, index) => sum + stat.calls - before[index]!.calls, 0) / tasks,
    cpuSecondsPerShard: after.map((stat, index) => stat.cpuSeconds - before[index]!.cpuSeconds),
  };
}

async function enqueueP99(target: RedisTarget, calls: number, waitReplicas: number, tag: string): Promise<number> {
  const producer = createProducer({ redis: target, prefix: `bench-cluster-enq-${tag}-${process.pid}`, waitReplicas });
  // (every conversationEnded ends by the producer's own deadline, 2 s: these bounds are spare)
  await within(
    60,
    `enqueue ${tag}: 100 warm-up conversations`,
    (async () => {
      for (let i = 0; i < 100; i += 1) await producer.conversationEnded(outcome(`${tag}-warm-${i}`, Date.now()));
    })(),
  );
  const samples: number[] = [];
  await within(
    Math.max(60, calls / 10),
    `enqueue ${tag}: ${calls} timed conversations`,
    (async () => {
      for (let i = 0; i < calls; i += 1) {
        const input = outcome(`${tag}-${i}`, Date.now());
        const started = performance.now();
        await producer.conversationEnded(input);
        samples.push(performance.now() - started);
      }
    })(),
  );
  await within(10, `enqueue ${tag}: the producer to close`, producer.close());
  return summarize(samples).p99;
}

export interface RedisClusterBench {
  conversations: number;
  throughput: {
    oneShard: { jobsPerSecond: Spread; cpuSecondsPerShard: number[] };
    threeShards: { jobsPerSecond: Spread; cpuSecondsPerShard: number[] };
    ratio: number;
    oneTypeOneShard: Spread;
  };
  commandsPerTask: { standalone: number; cluster: number; ratio: number };
  enqueueP99: { standalone: Spread; cluster: Spread; clusterWaitReplicas: Spread; ratio: number; waitRatio: number };
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<RedisClusterBench> {
  const conversations = quick ? 100 : 1_000;
  const rounds = quick ? 1 : 3;
  const calls = quick ? 200 : 1_500;
  const standaloneServer = await within(30, 'a private redis-server to start', startPrivateRedis());
  const clusters: Awaited<ReturnType<typeof startCluster>>[] = [];
  const stopAll = () =>
    within(30, 'the servers to stop', Promise.all([...clusters.map((c) => c.stop()), standaloneServer.destroy()]));
  try {
    for (const options of [{ masters: 1 }, { masters: 3 }, { masters: 3, replicas: 1 }])
      clusters.push(await within(120, `a cluster of ${JSON.stringify(options)} to be healthy`, startCluster(options)));
  } catch (error) {
    await stopAll();
    throw error;
  }
  const [one, three, replicated] = clusters as [(typeof clusters)[0], (typeof clusters)[0], (typeof clusters)[0]];
  const standalone: Server = {
    // statsOf reads a node through its connect(): the standalone server gets one.
    nodes: [
      {
        port: standaloneServer.port,
        connect: (options = {}) => {
          const client = new Redis({ host: '127.0.0.1', port: standaloneServer.port, lazyConnect: true, ...options });
          client.on('error', () => undefined);
          return client;
        },
      } as RedisNode,
    ],
    target: { mode: 'standalone', url: standaloneServer.url },
  };
  const shardsOf = async (cluster: typeof three): Promise<Server> => ({
    nodes: await within(10, 'the primaries of a cluster', cluster.primaries()),
    target: { mode: 'cluster', nodes: cluster.urls },
  });
  try {
    const oneShard = await shardsOf(one);
    const threeShards = await shardsOf(three);
    const perRound: { one: number; three: number; single: number }[] = [];
    let cpu = { one: [] as number[], three: [] as number[] };
    for (let round = 0; round < rounds; round += 1) {
      log(`redis-cluster: throughput round ${round + 1}/${rounds}`);
      const a = await fleetRun(oneShard, conversations, taskTypes, `one-${round}`);
      const b = await fleetRun(threeShards, conversations, taskTypes, `three-${round}`);
      const c = await fleetRun(threeShards, conversations * 2, ['update_crm'], `single-${round}`);
      perRound.push({ one: a.jobsPerSecond, three: b.jobsPerSecond, single: c.jobsPerSecond });
      cpu = { one: a.cpuSecondsPerShard, three: b.cpuSecondsPerShard };
    }
    log('redis-cluster: commands per task');
    const costStandalone = await fleetRun(standalone, conversations, taskTypes, 'cost-standalone');
    const costCluster = await fleetRun(threeShards, conversations, taskTypes, 'cost-cluster');
    log('redis-cluster: enqueue p99');
    const p99 = { standalone: [] as number[], cluster: [] as number[], waited: [] as number[] };
    for (let round = 0; round < rounds; round += 1) {
      p99.standalone.push(await enqueueP99(standalone.target, calls, 0, `s${round}`));
      p99.cluster.push(await enqueueP99(threeShards.target, calls, 0, `c${round}`));
      p99.waited.push(await enqueueP99({ mode: 'cluster', nodes: replicated.urls }, calls, 1, `w${round}`));
    }
    const jobs = (key: 'one' | 'three' | 'single') => acrossRounds(perRound.map((round) => round[key]));
    const commandsRatio = costCluster.commandsPerTask / costStandalone.commandsPerTask;
    const enqueue = {
      standalone: acrossRounds(p99.standalone),
      cluster: acrossRounds(p99.cluster),
      clusterWaitReplicas: acrossRounds(p99.waited),
    };
    return {
      conversations,
      throughput: {
        oneShard: { jobsPerSecond: jobs('one'), cpuSecondsPerShard: cpu.one },
        threeShards: { jobsPerSecond: jobs('three'), cpuSecondsPerShard: cpu.three },
        ratio: jobs('three').median / jobs('one').median,
        oneTypeOneShard: jobs('single'),
      },
      commandsPerTask: {
        standalone: costStandalone.commandsPerTask,
        cluster: costCluster.commandsPerTask,
        ratio: commandsRatio,
      },
      enqueueP99: {
        ...enqueue,
        ratio: enqueue.cluster.median / enqueue.standalone.median,
        waitRatio: enqueue.clusterWaitReplicas.median / enqueue.cluster.median,
      },
      goal: { metric: 'commands per task, cluster / standalone', limit: 1.1, met: commandsRatio <= 1.1 },
    };
  } finally {
    await stopAll();
  }
}

export const redisCluster: Benchmark<RedisClusterBench> = {
  name: 'redis-cluster',
  figures: [
    'throughput.oneShard.jobsPerSecond.median',
    'throughput.threeShards.jobsPerSecond.median',
    'throughput.ratio',
    'throughput.oneTypeOneShard.median',
    'commandsPerTask.standalone',
    'commandsPerTask.cluster',
    'commandsPerTask.ratio',
    'enqueueP99.standalone.median',
    'enqueueP99.cluster.median',
    'enqueueP99.clusterWaitReplicas.median',
    'enqueueP99.ratio',
    'enqueueP99.waitRatio',
  ],
  run,
  report: (e) => [
    '## Redis Cluster',
    '',
    ...measuredAt(e),
    `Private servers from redis-server: a standalone server, a 1-shard cluster, a 3-shard cluster and a 3-shard cluster`,
    `with a replica per master. Throughput: ${e.conversations} booked outcomes enqueued, then drained by one in-process`,
    'worker serving every type (deliveries answered at once). The machine has 2 cores shared by every shard, the worker',
    'and the producer, so more shards cannot run faster here; the ratio shows what the cluster costs on one machine.',
    '',
    '| | 1 shard | 3 shards | ratio |',
    '|---|---|---|---|',
    `| fleet jobs/s | ${range(e.throughput.oneShard.jobsPerSecond, 0)} | ${range(e.throughput.threeShards.jobsPerSecond, 0)} | ${fmt(e.throughput.ratio)} |`,
    `| Redis CPU s per shard (last round) | ${e.throughput.oneShard.cpuSecondsPerShard.map((s) => fmt(s)).join(', ')} | ${e.throughput.threeShards.cpuSecondsPerShard.map((s) => fmt(s)).join(', ')} | |`,
    '',
    `One type on its one shard (update_crm only): ${range(e.throughput.oneTypeOneShard, 0)} jobs/s: the ceiling of a`,
    'single type, whatever the number of shards (its keys share one slot).',
    '',
    '| | standalone | 3-shard cluster | ratio | goal |',
    '|---|---|---|---|---|',
    `| Redis commands per task (enqueue + delivery) | ${fmt(e.commandsPerTask.standalone, 1)} | ${fmt(e.commandsPerTask.cluster, 1)} | ${fmt(e.commandsPerTask.ratio)} | ${verdict(e.goal, '≤ 1.1')} |`,
    `| enqueue p99 (ms) | ${range(e.enqueueP99.standalone, 2)} | ${range(e.enqueueP99.cluster, 2)} | ${fmt(e.enqueueP99.ratio)} | |`,
    '',
    `With a replica per master and REDIS_WAIT_REPLICAS=1, enqueue p99 is ${range(e.enqueueP99.clusterWaitReplicas, 2)} ms,`,
    `${fmt(e.enqueueP99.waitRatio)}x the cluster without WAIT: the price of acknowledging only what a replica holds.`,
    '',
  ],
};
