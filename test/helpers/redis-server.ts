/**
 * A Redis of its own: `redis-server` on a free port in a temporary directory.
 *
 * With `appendfsync`, append-only persistence is on, and a test can stop the server
 * (SIGTERM: Redis saves and exits; SIGKILL: a crash) and start it again on the same port
 * and data. Without it there is no persistence at all: the benchmarks' Redis, whose
 * commandstats, memory and CPU no other client touches.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

export interface PrivateRedisOptions {
  /** Append-only persistence with this fsync policy; without it, none (no AOF, no RDB snapshots). */
  appendfsync?: 'always' | 'everysec';
}

export interface PrivateRedis {
  url: string;
  port: number;
  dir: string;
  /** The running server's process id; undefined while it is stopped. */
  readonly pid: number | undefined;
  start(): Promise<void>;
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

/** The redis-server binary (REDIS_SERVER, or redis-server on PATH), or undefined when there is none. */
export function redisServerBinary(): string | undefined {
  const candidate = process.env.REDIS_SERVER ?? 'redis-server';
  return spawnSync(candidate, ['--version'], { encoding: 'utf8' }).status === 0 ? candidate : undefined;
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const binary = redisServerBinary();
  if (!binary) throw new Error('redis-server is not installed (set REDIS_SERVER to its path)');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'aftercall-redis-'));
  const logFile = join(dir, 'redis.log');
  const persistence = options.appendfsync
    ? ['--appendonly', 'yes', '--appendfsync', options.appendfsync]
    : ['--appendonly', 'no'];
  let child: ChildProcess | undefined;
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const redis: PrivateRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return running() ? child!.pid : undefined;
    },
    async start() {
      child = spawn(
        binary,
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--save',
          '',
          ...persistence,
          '--daemonize',
          'no',
          '--logfile',
          logFile,
        ],
        { stdio: 'ignore' },
      );
      const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined); // not up yet: tried again below
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await probe.connect();
          // Loading the append-only file: wait until Redis serves.
          while ((await probe.info('persistence')).includes('loading:1')) await new Promise((r) => setTimeout(r, 50));
          await probe.ping();
          probe.disconnect();
          return;
        } catch {
          probe.disconnect();
          if (!running()) throw new Error(`redis-server on port ${port} exited while starting: ${log()}`);
          if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start: ${log()}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async stop(signal) {
      if (!child || !running()) return;
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill(signal);
      await exited;
    },
    async destroy() {
      await redis.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await redis.start();
  } catch (error) {
    await redis.destroy();
    throw error;
  }
  return redis;
}
