/**
 * The messages between the harness and its child processes (bench/worker-process.ts,
 * bench/delay-server.ts), over Node's IPC channel. Types only: the children import them
 * with `import type`, which leaves no import in their JavaScript (see harness.ts, childScript).
 *
 * A request carries an `id`; its reply carries `reply: id` (and `error` when it failed).
 * Unsolicited messages carry an `event`.
 */

/** How the harness starts a worker process: the JSON in its first argument. */
export interface WorkerProcessOptions {
  /** 'ours': aftercall's startWorker (the built package); 'raw': a plain BullMQ Worker. */
  side: 'ours' | 'raw';
  prefix: string;
  concurrency: number;
  /**
   * 'noop': an in-process delivery that does nothing; 'terminal': every delivery refused
   * (ours: dead-lettered; raw: UnrecoverableError); 'webhook': ours the real signed webhook
   * to CRM_WEBHOOK_URL, raw a plain fetch to `webhookUrl`.
   */
  port: 'noop' | 'terminal' | 'webhook';
  webhookUrl?: string;
  /** Send a memory sample every this many finished jobs (0: never). */
  sampleEvery: number;
  /** Force a full GC before every this-many-th sample (needs --expose-gc; 0: never). */
  gcEvery: number;
  /**
   * Keep each job's handler start and end in memory (epoch ms), for `timings`; sent only
   * when asked, after a round, so the round itself pays two numbers per job.
   */
  timings?: boolean;
  /**
   * raw only: keep this many small objects alive from the start (each an object with a
   * string and a nested object): a control for the effect of a larger heap on the worker.
   */
  ballast?: number;
}

export type Command =
  | { id: number; cmd: 'mark' }
  | { id: number; cmd: 'expect'; n: number }
  | { id: number; cmd: 'report' }
  | { id: number; cmd: 'timings' }
  | { id: number; cmd: 'close' };

export interface Reply {
  reply: number;
  error?: string;
}

/** A worker's answer to `report`: jobs finished since the mark, the last one's time, CPU ms since the mark. */
export interface WorkerReport extends Reply {
  sinceMark: number;
  /** Epoch ms (fractional); absent when no job finished since the mark. */
  lastAt?: number;
  cpuMs: number;
  /** Garbage collection since the mark: the main thread's pauses (perf_hooks 'gc' entries), ms and count. */
  gcMs?: number;
  gcCount?: number;
}

/**
 * A worker's answer to `timings`: [jobId, handler start, handler end] of every job
 * finished since the mark (epoch ms, fractional; ours' start is the end less its
 * durationMs, whole milliseconds).
 */
export interface WorkerTimings extends Reply {
  jobs: [jobId: string, start: number, end: number][];
}

/**
 * The delay server's answer to `timings`: [idempotency-key header, request read (its
 * headers parsed), answer written] of every request since the mark (epoch ms, fractional).
 */
export interface ServerTimings extends Reply {
  requests: [key: string, arrived: number, replied: number][];
}

/** The delay server's answer to `report`. */
export interface ServerReport extends Reply {
  cpuMs: number;
}

export interface MemorySample {
  count: number;
  rss: number;
  heapUsed: number;
  rssAfterGc?: number;
  heapUsedAfterGc?: number;
}

export type ChildEvent =
  | { event: 'ready'; pid: number; kept?: number }
  | { event: 'listening'; port: number }
  | ({ event: 'sample' } & MemorySample);

export type ChildMessage = Reply | WorkerReport | ServerReport | WorkerTimings | ServerTimings | ChildEvent;
