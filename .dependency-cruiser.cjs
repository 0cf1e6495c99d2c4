/**
 * The dependency rule of ../shared/ENGINEERING.md, checked inside `npm test` (npm run lint:deps):
 *
 *   contract <- tasks <- redis <- delivery <- config/environment <- producer, worker, ops <- http, cli
 *
 * config/defaults is a leaf anyone may import. dev/ (sandbox, synthetic load, demo) may import anything
 * in src/, but nothing in src/ imports dev/ statically: the CLI loads it with import() only for
 * `aftercall sandbox` and `aftercall demo`. Same-layer folders (producer, worker, ops) do not import
 * each other. Type-only imports count too: a type-only cycle turns real the day one import becomes a value.
 */
/** A folder allows everything in it; a file (config/defaults.ts) only itself. */
const allow = (a) => (a.endsWith('.ts') ? `^src/${a.replace(/\./g, '\\.')}$` : `^src/${a}/`);

const layer = (name, allowed) => ({
  name: `layer-${name}`,
  comment: `src/${name} may import only ${allowed.length ? allowed.join(', ') : 'nothing of ours'} (and itself)`,
  severity: 'error',
  from: { path: `^src/${name}/` },
  to: { path: '^(src|dev)/', pathNot: [`^src/${name}/`, ...allowed.map(allow)] },
});

const below = {
  'config/defaults.ts': [],
  'config/package-root.ts': [],
  contract: ['config/defaults.ts', 'config/package-root.ts'],
  tasks: ['contract', 'config/defaults.ts'],
  redis: ['tasks', 'contract', 'config/defaults.ts'],
  delivery: ['redis', 'tasks', 'contract', 'config/defaults.ts'],
};
below['config/environment.ts'] = ['delivery', ...below.delivery];
const app = ['config/environment.ts', ...below['config/environment.ts']];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'no import cycles, type-only ones included',
      from: {},
      to: { circular: true },
    },
    {
      name: 'config-defaults-is-a-leaf',
      severity: 'error',
      from: { path: '^src/config/defaults\\.ts$' },
      to: { path: '^(src|dev)/' },
    },
    layer('contract', below.contract),
    layer('tasks', below.tasks),
    layer('redis', below.redis),
    layer('delivery', below.delivery),
    {
      name: 'layer-config-environment',
      severity: 'error',
      from: { path: '^src/config/environment\\.ts$' },
      to: { path: '^(src|dev)/', pathNot: ['^src/config/', ...below['config/environment.ts'].map(allow)] },
    },
    layer('producer', app),
    layer('worker', app),
    layer('ops', app),
    layer('http', ['producer', 'worker', 'ops', ...app]),
    {
      name: 'src-never-imports-dev-statically',
      severity: 'error',
      comment: 'dev/ is loaded with import() by the CLI only, never by a static import',
      from: { path: '^src/' },
      to: { path: '^dev/', dependencyTypesNot: ['dynamic-import'] },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      from: { orphan: true, path: '^(src|dev)/', pathNot: '\\.d\\.ts$' },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
