/**
 * Imports one module in a fresh `node` (no loader, no TypeScript: what a user's process
 * does) and reports what the import cost and, when asked, every module it loaded. Used by
 * test/producer-entry.test.ts (the module graph) and bench/import-cost.ts (time and heap).
 *
 * The child runs from the package root, so a specifier may be a path (`./dist/src/index.js`)
 * or the package's own name (`aftercall/producer`, resolved through package.json's exports,
 * as a dependent's import would be). Heap figures are taken right after a full collection
 * (`--expose-gc`), before and after the import.
 *
 * With `record`, the child also lists the modules loaded: ES modules through a resolve hook
 * (module.register, before anything else loads) and CommonJS modules from require.cache
 * (Node 20's hooks do not see `require` inside CommonJS packages such as BullMQ). The hook
 * runs on a thread of its own, so a recording child is not used for timings.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ChildImport {
  specifier: string;
  /** Wall time of `await import(specifier)` in the child, ms. */
  importMs: number;
  /** CPU time (user + system) of the import, ms. */
  cpuMs: number;
  /** Heap in use after a full GC: before the import, after it, and the difference (bytes). */
  heapBefore: number;
  heapAfter: number;
  heapAdded: number;
  /** Resident set size after the import and a full GC (bytes). */
  rss: number;
  /** CommonJS modules in require.cache after the import. */
  commonJsModules: number;
  /** With `record`: every module loaded, as absolute file paths (node: built-ins left out), sorted. */
  modules?: string[];
}

// The resolve hook: appends each resolved URL to the file named in `initialize`'s data.
const HOOKS = `
import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(log, result.url + '\\n');
  return result;
}`;

const registerHooks = (log: string) =>
  `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOKS)}), { data: { log: ${JSON.stringify(log)} } });`;

// The child: time the import between two full collections, then report as one JSON line.
const CHILD = `
import { createRequire } from 'node:module';
const specifier = process.argv[1];
globalThis.gc();
const heapBefore = process.memoryUsage().heapUsed;
const cpu0 = process.cpuUsage();
const started = performance.now();
await import(specifier);
const importMs = performance.now() - started;
const cpu = process.cpuUsage(cpu0);
globalThis.gc();
const memory = process.memoryUsage();
const cache = Object.keys(createRequire(import.meta.url).cache);
process.stdout.write(JSON.stringify({
  importMs,
  cpuMs: (cpu.user + cpu.system) / 1000,
  heapBefore,
  heapAfter: memory.heapUsed,
  rss: memory.rss,
  commonJs: cache,
}) + '\\n');
`;

export async function importInChild(specifier: string, { record = false } = {}): Promise<ChildImport> {
  const dir = record ? mkdtempSync(join(tmpdir(), 'aftercall-imports-')) : undefined;
  const log = dir ? join(dir, 'resolved.txt') : undefined;
  try {
    const args = [
      '--expose-gc',
      ...(log ? ['--import', `data:text/javascript,${encodeURIComponent(registerHooks(log))}`] : []),
      '--input-type=module',
      '--eval',
      CHILD,
      specifier,
    ];
    const { code, stdout, stderr } = await run(process.execPath, args);
    if (code !== 0) throw new Error(`importing ${specifier} in a child process failed (exit ${code}): ${stderr}`);
    const reply = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as {
      importMs: number;
      cpuMs: number;
      heapBefore: number;
      heapAfter: number;
      rss: number;
      commonJs: string[];
    };
    const result: ChildImport = {
      specifier,
      importMs: reply.importMs,
      cpuMs: reply.cpuMs,
      heapBefore: reply.heapBefore,
      heapAfter: reply.heapAfter,
      heapAdded: reply.heapAfter - reply.heapBefore,
      rss: reply.rss,
      commonJsModules: reply.commonJs.length,
    };
    if (log) {
      const resolved = readFileSync(log, 'utf8')
        .split('\n')
        .filter((url) => url.startsWith('file:'))
        .map((url) => fileURLToPath(url));
      result.modules = [...new Set([...resolved, ...reply.commonJs])].sort();
    }
    return result;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** The loaded modules as paths relative to the package root (`dist/src/...`, `node_modules/...`). */
export function relativeToPackage(modules: string[]): string[] {
  const root = pathToFileURL(PACKAGE_ROOT).pathname;
  return modules.map((path) => (path.startsWith(root) ? path.slice(root.length) : path));
}

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // No NODE_OPTIONS: the parent's loaders (tsx, vitest) must not reach the child.
    const { NODE_OPTIONS: _, ...env } = process.env;
    const child = spawn(command, args, { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
