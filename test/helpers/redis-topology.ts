/**
 * Real Redis topologies for tests, made from the machine's `redis-server` and `redis-cli`
 * in a temporary directory, on free ports, and stopped afterwards:
 *
 * - `startCluster({ masters: 3 })`: a 3-master Redis Cluster (`--cluster-enabled yes` ×3,
 *   then `redis-cli --cluster create ... --cluster-replicas 0`); `masters: 1` gives a 1-shard
 *   cluster (one node that takes every slot itself);
 *   `startCluster({ masters: 3, replicas: 1 })`: 3 masters plus a replica each, for failover.
 * - `startSentinelSet()`: a primary, a replica and three Sentinels (`redis-server --sentinel`)
 *   watching it.
 * - `makeCertificates()` + `startTlsRedis()`: a self-signed CA made with openssl, and a Redis
 *   serving TLS only on its `tls-port` (client certificates optional or required).
 *
 * Every node can be killed (SIGKILL: a crash) and started again on its port and data.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

const HOST = '127.0.0.1';

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A free port below 55536 whose cluster bus port (port + 10000) is free too. Random in a
 * range outside the system's ephemeral ports, so parallel test files rarely collide.
 */
export async function freeNodePort(): Promise<number> {
  for (let tries = 0; tries < 200; tries += 1) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    if ((await canListen(port)) && (await canListen(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port pair for a Redis node');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RedisNode {
  port: number;
  dir: string;
  /** Starts (again) with the same port, directory and data. */
  start(): Promise<void>;
  kill(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  readonly running: boolean;
  /** A short-lived admin connection (lazy; the caller disconnects it). */
  connect(options?: RedisOptions): Redis;
}

interface NodeSpec {
  port: number;
  dir: string;
  args: string[];
  /** How a probe connects: plain on `port`, or with these options (TLS, a password). */
  probe?: RedisOptions;
  /** A config file to write before each start, for servers that rewrite it (Sentinel). */
  configFile?: { path: string; text: string };
}

function startNode(spec: NodeSpec): RedisNode {
  let child: ChildProcess | undefined;
  let wroteConfig = false;
  const node: RedisNode = {
    port: spec.port,
    dir: spec.dir,
    get running() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    connect(options = {}) {
      const client = new Redis({
        host: HOST,
        port: spec.port,
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        retryStrategy: () => null,
        ...spec.probe,
        ...options,
      });
      client.on('error', () => undefined);
      return client;
    },
    async start() {
      if (spec.configFile && !wroteConfig) {
        writeFileSync(spec.configFile.path, spec.configFile.text);
        wroteConfig = true;
      }
      child = spawn('redis-server', spec.args, { stdio: 'ignore', cwd: spec.dir });
      const deadline = Date.now() + 20_000;
      for (;;) {
        const probe = node.connect();
        try {
          await probe.connect();
          while ((await probe.info('persistence')).includes('loading:1')) await sleep(50);
          await probe.ping();
          return;
        } catch (error) {
          if (Date.now() > deadline || !node.running)
            throw new Error(
              `redis-server on port ${spec.port} did not start (${(error as Error).message}); see ${spec.dir}`,
            );
          await sleep(50);
        } finally {
          probe.disconnect();
        }
      }
    },
    async kill(signal = 'SIGKILL') {
      if (!node.running) return;
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child!.kill(signal);
      await exited;
    },
  };
  return node;
}

function baseArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--daemonize',
    'no',
    '--logfile',
    join(dir, 'redis.log'),
  ];
}

async function until<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await read();
      if (ok(value)) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await sleep(100);
  }
}

async function info(node: RedisNode, section: string): Promise<string> {
  const client = node.connect();
  try {
    await client.connect();
    return await client.info(section);
  } finally {
    client.disconnect();
  }
}

const field = (text: string, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(text)?.[1]?.trim();

// --------------------------------------------------------------------------------- cluster

export interface TestCluster {
  nodes: RedisNode[];
  /** redis:// seed URLs, for REDIS_CLUSTER_NODES. */
  urls: string[];
  /** The node currently serving `slot` as primary. */
  primaryOf(slot: number): Promise<RedisNode>;
  /** The primaries, in slot order. */
  primaries(): Promise<RedisNode[]>;
  /** Waits until every running node reports cluster_state:ok and every slot has a running primary. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Removes every key on every primary. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  masters?: number;
  /** Replicas per master; default 0. */
  replicas?: number;
  /** cluster-node-timeout: how long a master may be silent before its replica takes over; default 2000 ms. */
  nodeTimeoutMs?: number;
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  const root = mkdtempSync(join(tmpdir(), 'aftercall-cluster-'));
  const nodes: RedisNode[] = [];
  for (let index = 0; index < masters * (1 + replicas); index += 1) {
    const port = await freeNodePort();
    const dir = join(root, String(port));
    mkdirSync(dir);
    nodes.push(
      startNode({
        port,
        dir,
        args: [
          ...baseArgs(port, dir),
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          // A node that never met another (a 1-shard cluster) would announce no address at all.
          '--cluster-announce-ip',
          HOST,
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 2_000),
          // A replica takes over however long it was disconnected: tests kill masters on purpose.
          '--cluster-replica-validity-factor',
          '0',
        ],
      }),
    );
  }
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.kill('SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((node) => node.start()));
    if (masters === 1 && replicas === 0) {
      // `redis-cli --cluster create` wants 3 masters: a 1-shard cluster takes every slot itself.
      const client = nodes[0]!.connect();
      try {
        await client.connect();
        await client.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      } finally {
        client.disconnect();
      }
    } else {
      const create = spawnSync(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...nodes.map((node) => `${HOST}:${node.port}`),
          '--cluster-replicas',
          String(replicas),
          '--cluster-yes',
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const slotsOf = async (): Promise<[number, number, [string, number][]][]> => {
    for (const node of nodes.filter((candidate) => candidate.running)) {
      const client = node.connect();
      try {
        await client.connect();
        const slots = (await client.cluster('SLOTS')) as unknown as [number, number, ...[string, number][]][];
        return slots.map(([start, end, ...hosts]) => [start, end, hosts.map(([host, port]) => [host, port])]);
      } catch {
        // try the next node
      } finally {
        client.disconnect();
      }
    }
    throw new Error('no cluster node answers');
  };
  const byPort = (port: number) => nodes.find((node) => node.port === port)!;
  const cluster: TestCluster = {
    nodes,
    urls: nodes.map((node) => `redis://${HOST}:${node.port}`),
    async primaryOf(slot) {
      const ranges = await slotsOf();
      const range = ranges.find(([start, end]) => slot >= start && slot <= end);
      if (!range) throw new Error(`slot ${slot} is not served`);
      return byPort(range[2][0]![1]);
    },
    async primaries() {
      const ranges = (await slotsOf()).sort((a, b) => a[0] - b[0]);
      return [...new Set(ranges.map((range) => range[2][0]![1]))].map(byPort);
    },
    async waitHealthy(timeoutMs = 60_000) {
      await until(
        'the cluster to be healthy',
        async () => {
          const states = await Promise.all(
            nodes
              .filter((node) => node.running)
              .map(async (node) => field(await info(node, 'cluster'), 'cluster_enabled') && (await clusterState(node))),
          );
          const ranges = await slotsOf();
          const covered = ranges.reduce((sum, [start, end]) => sum + end - start + 1, 0);
          const primariesUp = ranges.every((range) => byPort(range[2][0]![1]).running);
          return states.every((state) => state === 'ok') && covered === 16_384 && primariesUp;
        },
        Boolean,
        timeoutMs,
      );
      if (replicas > 0) {
        // Replicas of running primaries have caught up with them.
        await until(
          'replicas to be in sync',
          async () => {
            const roles = await Promise.all(
              nodes.filter((node) => node.running).map(async (node) => info(node, 'replication')),
            );
            return roles.every((text) => field(text, 'role') !== 'slave' || field(text, 'master_link_status') === 'up');
          },
          Boolean,
          timeoutMs,
        );
      }
    },
    async flush() {
      await Promise.all(
        (await cluster.primaries()).map(async (node) => {
          const client = node.connect();
          try {
            await client.connect();
            await client.flushall();
          } finally {
            client.disconnect();
          }
        }),
      );
    },
    stop,
  };
  try {
    await cluster.waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}

async function clusterState(node: RedisNode): Promise<string | undefined> {
  const client = node.connect();
  try {
    await client.connect();
    return field((await client.cluster('INFO')) as string, 'cluster_state');
  } finally {
    client.disconnect();
  }
}

// -------------------------------------------------------------------------------- sentinel

export interface SentinelSet {
  masterName: string;
  /** The primary at start, then its replica. */
  servers: RedisNode[];
  sentinels: RedisNode[];
  /** `host:port` of each Sentinel, for REDIS_SENTINELS. */
  addresses: string[];
  /** The node the Sentinels name as primary now. */
  currentPrimary(): Promise<RedisNode>;
  stop(): Promise<void>;
}

export interface SentinelOptions {
  /** requirepass of the data nodes (the Sentinels then authenticate with it). */
  password?: string;
  /** requirepass of the Sentinels themselves. */
  sentinelPassword?: string;
}

export async function startSentinelSet(options: SentinelOptions = {}): Promise<SentinelSet> {
  const masterName = 'aftercall-primary';
  const root = mkdtempSync(join(tmpdir(), 'aftercall-sentinel-'));
  const auth = options.password ? ['--requirepass', options.password, '--masterauth', options.password] : [];
  const probe = options.password ? { password: options.password } : {};
  const servers: RedisNode[] = [];
  const primaryPort = await freeNodePort();
  for (const port of [primaryPort, await freeNodePort()]) {
    const dir = join(root, String(port));
    mkdirSync(dir);
    const replicaOf = port === primaryPort ? [] : ['--replicaof', HOST, String(primaryPort)];
    servers.push(startNode({ port, dir, args: [...baseArgs(port, dir), ...auth, ...replicaOf], probe }));
  }
  const sentinels: RedisNode[] = [];
  for (let index = 0; index < 3; index += 1) {
    const port = await freeNodePort();
    const dir = join(root, `sentinel-${port}`);
    mkdirSync(dir);
    const path = join(dir, 'sentinel.conf');
    const text = [
      `port ${port}`,
      `bind ${HOST}`,
      `dir ${dir}`,
      `logfile ${join(dir, 'sentinel.log')}`,
      ...(options.sentinelPassword ? [`requirepass ${options.sentinelPassword}`] : []),
      `sentinel monitor ${masterName} ${HOST} ${primaryPort} 2`,
      ...(options.password ? [`sentinel auth-pass ${masterName} ${options.password}`] : []),
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n');
    sentinels.push(
      startNode({
        port,
        dir,
        args: [path, '--sentinel'],
        configFile: { path, text },
        probe: options.sentinelPassword ? { password: options.sentinelPassword } : {},
      }),
    );
  }
  const stop = async () => {
    await Promise.all([...sentinels, ...servers].map((node) => node.kill('SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  const set: SentinelSet = {
    masterName,
    servers,
    sentinels,
    addresses: sentinels.map((node) => `${HOST}:${node.port}`),
    async currentPrimary() {
      for (const sentinel of sentinels.filter((node) => node.running)) {
        const client = sentinel.connect();
        try {
          await client.connect();
          const [, port] = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
          const primary = servers.find((node) => node.port === Number(port));
          if (primary) return primary;
        } catch {
          // ask the next Sentinel
        } finally {
          client.disconnect();
        }
      }
      throw new Error('no Sentinel names a primary');
    },
    stop,
  };
  try {
    for (const server of servers) await server.start();
    await until(
      'the replica to sync',
      () => info(servers[1]!, 'replication'),
      (text) => field(text, 'master_link_status') === 'up',
    );
    await Promise.all(sentinels.map((node) => node.start()));
    // Every Sentinel knows the replica and the other Sentinels (needed to agree on a failover).
    await until(
      'the Sentinels to see each other',
      async () =>
        Promise.all(
          sentinels.map(async (node) => {
            const client = node.connect();
            try {
              await client.connect();
              const master = (await client.call('SENTINEL', 'MASTER', masterName)) as string[];
              const at = (name: string) => Number(master[master.indexOf(name) + 1]);
              return at('num-other-sentinels') === 2 && at('num-slaves') === 1;
            } finally {
              client.disconnect();
            }
          }),
        ),
      (ready) => ready.every(Boolean),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return set;
}

// ------------------------------------------------------------------------------------- TLS

export interface Certificates {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  remove(): void;
}

/** A self-signed CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, made with openssl. */
export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'aftercall-tls-'));
  const run = (args: string[]) => {
    const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr}`);
  };
  run(['genrsa', '-out', 'ca.key', '2048']);
  run([
    'req',
    '-x509',
    '-new',
    '-nodes',
    '-key',
    'ca.key',
    '-sha256',
    '-days',
    '2',
    '-subj',
    '/CN=aftercall test CA',
    '-out',
    'ca.crt',
  ]);
  for (const [name, extensions] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    run(['genrsa', '-out', `${name}.key`, '2048']);
    run(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=aftercall test ${name}`, '-out', `${name}.csr`]);
    writeFileSync(join(dir, `${name}.ext`), `${extensions}\n`);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ]);
  }
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    serverCertFile: join(dir, 'server.crt'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TlsRedis extends RedisNode {
  /** rediss:// URL of the TLS port. */
  url: string;
  stop(): Promise<void>;
}

/** A Redis serving TLS only (`--port 0 --tls-port P`); `clientCertificates: 'yes'` requires mutual TLS. */
export async function startTlsRedis(
  certificates: Certificates,
  options: { clientCertificates: 'yes' | 'optional' },
): Promise<TlsRedis> {
  const port = await freeNodePort();
  const dir = mkdtempSync(join(tmpdir(), 'aftercall-tls-redis-'));
  const node = startNode({
    port,
    dir,
    args: [
      ...baseArgs(port, dir).map((arg, index, args) => (args[index - 1] === '--port' ? '0' : arg)),
      '--tls-port',
      String(port),
      '--tls-cert-file',
      certificates.serverCertFile,
      '--tls-key-file',
      certificates.serverKeyFile,
      '--tls-ca-cert-file',
      certificates.caFile,
      '--tls-auth-clients',
      options.clientCertificates,
    ],
    probe: {
      tls: {
        ca: readFileSync(certificates.caFile),
        cert: readFileSync(certificates.clientCertFile),
        key: readFileSync(certificates.clientKeyFile),
      },
    },
  });
  await node.start();
  return Object.assign(node, {
    url: `rediss://${HOST}:${port}`,
    async stop() {
      await node.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  });
}
