/**
 * The package's root folder (where package.json and bin/ are), found by walking up from
 * this module: the same code runs from src/ (tests) and from dist/src/ (the command).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bin', 'aftercall.js'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('aftercall: cannot find the package root (package.json beside bin/)');
    dir = parent;
  }
  root = dir;
  return dir;
}
