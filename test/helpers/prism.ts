/**
 * A validating mock of a provider's published API (Stoplight Prism), on a free loopback
 * port. Prism answers 422 with the offending field for any request the specification
 * rejects, so a test that sends through the real SDK learns whether the real API would
 * accept the request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

const PRISM = fileURLToPath(new URL('../../node_modules/@stoplight/prism-cli/dist/index.js', import.meta.url));

export interface PrismServer {
  url: string;
  log: string[];
  close(): Promise<void>;
}

export async function startPrism(specPath: string): Promise<PrismServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [PRISM, 'mock', '-h', '127.0.0.1', '-p', String(port), specPath],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const log: string[] = [];
  const collect = (chunk: Buffer) => log.push(...chunk.toString('utf8').split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prism exited (${child.exitCode}): ${log.slice(-10).join('\n')}`);
    if (log.some((line) => line.includes('Prism is listening'))) break;
    if (Date.now() > deadline) throw new Error(`prism did not start within 60 s: ${log.slice(-10).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    log,
    close: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
