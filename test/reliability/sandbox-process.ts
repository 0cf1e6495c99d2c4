/**
 * The provider sandbox in a process of its own (`aftercall sandbox`, a real child process),
 * for scenarios that judge the time a request reached the provider.
 *
 * In the test process, the sandbox stamps a request's arrival when that process' event
 * loop gets to it, and the test process also runs the load, reads every worker's log lines
 * and keeps them: its pauses (garbage collection of that growing heap among them) reached
 * 65 ms in the 5-minute rate-limit scenario, and a request sent 1 ms after its grant was
 * stamped 35 to 45 ms after it. A provider is never inside the client's process; in a
 * process of its own, with nothing else to do, it stamps a request when it comes.
 *
 * The harness reads it over its HTTP API (`GET /_sandbox/deliveries`), as a test would
 * read a real provider's.
 */
import { spawn } from 'node:child_process';
import type { Delivery, DeliveryProvider } from '../../dev/sandbox/delivery-log.js';
import { SANDBOX_WEBHOOK_SECRET } from '../../dev/sandbox/sandbox.js';
import { BIN } from '../helpers/child-worker.js';

export interface SandboxProcess {
  url: string;
  resendBaseUrl: string;
  twilioApiBase: string;
  webhookUrl(type: string): string;
  webhookSecret: string;
  pid: number;
  deliveries(filter?: { provider?: DeliveryProvider }): Promise<Delivery[]>;
  close(): Promise<void>;
}

/** Starts `aftercall sandbox --port 0` with `args` (its options) and waits until it listens. */
export async function startSandboxProcess(args: string[], timeoutMs = 20_000): Promise<SandboxProcess> {
  const child = spawn(process.execPath, [BIN, 'sandbox', '--port', '0', ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`aftercall sandbox did not listen within ${timeoutMs} ms; output: ${output}`));
    }, timeoutMs);
    const read = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const listening = /listening on (http:\/\/\S+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1]!);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`aftercall sandbox exited (${code ?? signal}) before listening; output: ${output}`));
    });
  });
  // Keep reading, so that a full pipe never blocks it.
  child.stdout.resume();
  child.stderr.resume();
  return {
    url,
    resendBaseUrl: url,
    twilioApiBase: url,
    webhookUrl: (type) => `${url}/webhooks/${encodeURIComponent(type)}`,
    webhookSecret: SANDBOX_WEBHOOK_SECRET,
    pid: child.pid!,
    async deliveries(filter) {
      const query = filter?.provider ? `?provider=${filter.provider}` : '';
      const response = await fetch(`${url}/_sandbox/deliveries${query}`);
      if (response.status !== 200) {
        throw new Error(`GET /_sandbox/deliveries answered ${response.status}: ${await response.text()}`);
      }
      return ((await response.json()) as { deliveries: Delivery[] }).deliveries;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
