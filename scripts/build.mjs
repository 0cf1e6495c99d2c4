// Compiles src/ and dev/ to dist/src and dist/dev and copies the Lua scripts next to the code that loads them.
// dist/ is updated in place (never deleted first), so a process starting during a build
// does not find it missing; files whose source is gone are removed afterwards.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
const dist = join(root, 'dist');

execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
cpSync(join(root, 'src/redis/lua'), join(dist, 'src/redis/lua'), { recursive: true });

// Remove outputs of deleted sources.
const sourceOf = (file) => {
  const rel = relative(dist, file);
  if (rel.startsWith(join('src', 'redis', 'lua'))) return join(root, rel);
  return join(root, rel.replace(/\.d\.ts$|\.js\.map$|\.js$/, '.ts'));
};
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
for (const file of walk(dist)) if (!existsSync(sourceOf(file))) rmSync(file);
