/**
 * aftercall's Lua scripts read on their own: each file's header and its `local k = { ... }`
 * table list its KEYS in the order scripts.ts sends them, the count in the file name matches,
 * and includes resolve explicitly, each once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCRIPTS, scriptSource, type ScriptName } from '../src/redis/scripts.js';

const LUA = new URL('../src/redis/lua/', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, LUA), 'utf8');
const names = Object.keys(SCRIPTS) as ScriptName[];

/** `name = KEYS[3]` or `name = KEYS[n + 3]` lines of the script's `local k = {` table, in order. */
function keyTable(lua: string): { name: string; index: number }[] {
  const table = lua.slice(lua.indexOf('local k = {'), lua.indexOf('}', lua.indexOf('local k = {')));
  return [...table.matchAll(/^\s+(\w+) = KEYS\[(?:n \+ )?(\d+)\],$/gm)].map((match) => ({
    name: match[1]!,
    index: Number(match[2]),
  }));
}

describe('Lua scripts', () => {
  it.each(names)('%s names its KEYS in the order scripts.ts sends them, in its table and its header', (name) => {
    const spec = SCRIPTS[name];
    const lua = read(spec.file);
    const table = keyTable(lua);
    expect(table.map((entry) => entry.name)).toEqual([...spec.keys]);
    expect(table.map((entry) => entry.index)).toEqual(spec.keys.map((_, index) => index + 1));
    const header = lua.slice(0, lua.indexOf(']]'));
    const documented = [...header.matchAll(/^\s+KEYS\[(?:n\+)?(\d+)\]/gm)].map((match) => Number(match[1]));
    expect(documented).toEqual(spec.keys.map((_, index) => index + 1));
    expect(header).toMatch(/Output:/);
    const count = /-(\d+)\.lua$/.exec(spec.file);
    if (count) expect(Number(count[1])).toBe(spec.keys.length);
    else expect(spec.file).toBe('enqueue-tasks.lua');
  });

  it('expands every include once, and leaves no directive behind', () => {
    for (const name of names) {
      const source = scriptSource(name);
      expect(source, name).not.toMatch(/^--- @/m);
      for (const include of [...read(SCRIPTS[name].file).matchAll(/--- @include "(\w+)"/g)].map((m) => m[1]!)) {
        expect(source.match(new RegExp(`^-- include ${include}$`, 'gm')), `${name}: ${include}`).toHaveLength(1);
      }
    }
  });

  it('has no helper file put silently in front of scripts: every include is used by some script', () => {
    const includes = readdirSync(new URL('includes/', LUA)).map((file) => file.replace(/\.lua$/, ''));
    const used = new Set(
      names.flatMap((name) => [...scriptSource(name).matchAll(/^-- include (\w+)$/gm)].map((m) => m[1])),
    );
    expect(includes.filter((include) => !used.has(include))).toEqual([]);
  });
});
