/** A real worker process (`node bin/aftercall.js worker`), for tests that kill or stop one. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/aftercall.js', import.meta.url));

export interface LogLine {
  msg: string;
  [field: string]: unknown;
}

export interface ChildWorker {
  process: ChildProcess;
  pid: number;
  logs: LogLine[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  kill(signal: NodeJS.Signals): void;
}

export function startChildWorker(env: Record<string, string>, args: string[] = []): ChildWorker {
  const child = spawn(process.execPath, [BIN, 'worker', ...args], {
    // Tests read the worker's log lines, so it logs at least at info (testEnv's 'silent' and
    // any quieter level become info); a caller's 'debug' or 'trace' is kept.
    env: {
      PATH: process.env.PATH ?? '',
      ...env,
      LOG_LEVEL: env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace' ? env.LOG_LEVEL : 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const worker: ChildWorker = {
    process: child,
    pid: child.pid!,
    logs: [],
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
    async waitForLog(predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = worker.logs.find(predicate);
        if (found) return found;
        if (Date.now() > deadline) {
          throw new Error(
            `worker ${worker.pid}: log line not seen within ${timeoutMs} ms; stderr: ${worker.stderr}; last logs: ${JSON.stringify(worker.logs.slice(-5))}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    kill: (signal) => child.kill(signal),
  };
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        worker.logs.push(JSON.parse(line) as LogLine);
      } catch {
        worker.logs.push({ msg: line });
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    worker.stderr += chunk.toString('utf8');
  });
  return worker;
}
