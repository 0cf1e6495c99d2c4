#!/usr/bin/env node
// The `aftercall` command. The TypeScript sources are compiled to dist/ by `npm ci`
// (the `prepare` script) or `npm run build`.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('aftercall: dist/ is missing; run `npm run build` (npm ci does it for you)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
const code = await main(process.argv.slice(2));
// Exit only once everything written has left the process: writes to a pipe are
// asynchronous, and process.exit drops what is still queued (with a slow reader, most
// of `aftercall enqueue`'s result lines).
const flushed = (stream) => new Promise((resolve) => stream.write('', resolve));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
