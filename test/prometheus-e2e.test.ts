/**
 * The dashboard and the alert rules against a real Prometheus (Debian's `prometheus`)
 * scraping a real worker that processes real jobs, some of which fail. Every panel query
 * and every alert expression must parse and find series; an alert's thresholds are taken
 * off for that (see helpers/promql.ts), so the check does not depend on which alerts fire.
 *
 * The destinations see what providers do: update_crm's webhook has a configured rate limit
 * (CRM_WEBHOOK_RATE_LIMIT=5/s, under the load's pace, so jobs wait for their turn), the
 * ticket receiver has a real limit of 4 requests a second (429 with ratelimit-* headers
 * above it), and the callback receiver is down for 10 seconds (503), long enough to open
 * its circuit; random 429s hold every destination now and then.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { startSandbox, type Sandbox } from '../dev/sandbox/sandbox.js';
import { startWorker, type FleetWorker } from '../src/worker/worker.js';
import { freePort } from './helpers/free-port.js';
import { signalQueries } from './helpers/promql.js';
import { REDIS_URL, redis, removePrefix, testConfig, uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const prefix = uniquePrefix('prom-e2e');
const client = redis();
let sandbox: Sandbox;
let worker: FleetWorker;
let prometheus: ChildProcess | undefined;
let prometheusUrl = '';
const workdir = mkdtempSync(join(tmpdir(), 'aftercall-prometheus-'));

async function query(
  expr: string,
): Promise<{ status: string; error?: string; data?: { resultType: string; result: unknown[] } }> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await response.json()) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: unknown[] };
  };
}

const HOUR = 3_600_000;
/** Every destination series has seen what the workload makes happen. */
const DESTINATIONS_SEEN = [
  'max(max_over_time(aftercall_destination_state{destination="webhook:route_callback",state="open"}[5m])) == 1',
  'sum(aftercall_destination_transitions_total{destination="webhook:route_callback",to="open"}) > 0',
  'sum(aftercall_rate_limited_total{destination="webhook:update_ticket"}) > 0',
  'sum(aftercall_destination_waits_total{destination="webhook:update_crm",reason="rate_limit"}) > 0',
  'sum(aftercall_destination_waits_total{destination="webhook:route_callback",reason="circuit"}) > 0',
];
let feeding = true;

beforeAll(async () => {
  const probe = spawnSync('prometheus', ['--version']);
  if (probe.error) throw new Error("prometheus is not installed: install Debian's `prometheus` package (.ci/run does)");

  // A worker processing a steady load, with failures of every kind.
  sandbox = await startSandbox({
    port: 0,
    seed: 11,
    faults: {
      serverErrorRate: 0.25,
      rateLimitRate: 0.1,
      retryAfterSeconds: 1,
      terminalRecipients: ['refused@example.com'],
      // The sandbox names a webhook destination by its path: the ticket receiver is /webhooks/tickets.
      limits: { 'webhook:tickets': 4 },
    },
  });
  const metricsPort = await freePort();
  worker = await startWorker({
    config: testConfig(prefix, `${sandbox.url}/webhooks`, {
      WEBHOOK_SECRET: sandbox.webhookSecret,
      SWEEP_INTERVAL: '500ms',
      CRM_WEBHOOK_RATE_LIMIT: '5/s',
    }),
    concurrency: 5,
    metricsPort,
  });
  await worker.ready;
  const producer = createProducer({
    redisUrl: REDIS_URL,
    prefix,
    tasks: { follow_up_survey: { settings: { delay: HOUR, expiresAfter: 2_000 } } },
  });
  void (async () => {
    for (let index = 0; feeding; index += 1) {
      const now = Date.now();
      await producer
        .conversationEnded({
          conversationId: `e2e-${index}`,
          endedAt: new Date(now - 1_000).toISOString(),
          outcome: (['booked', 'resolved', 'callback_requested'] as const)[index % 3],
          customer: { id: 'c', email: index % 7 === 0 ? 'refused@example.com' : `c${index}@example.com` },
          booking: { id: `bk-${index}`, startsAt: new Date(now + 10 * HOUR).toISOString() },
          ticket: { id: `T-${index}` },
          callback: { reason: 'call me', priority: 'normal' },
          surveyOptIn: true,
        })
        .catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    await producer.close();
  })();
  // An outage of the callback receiver while the load runs: its circuit opens, then a probe closes it.
  // (The fleet's destination webhook:route_callback is the sandbox's /webhooks/callbacks.)
  sandbox.setFaults({ outages: { 'webhook:callbacks': { durationMs: 10_000 } } });

  // Prometheus scraping it every second, with the alert rules loaded.
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  writeFileSync(
    join(workdir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: ['${join(root, 'deploy/prometheus/alerts.yml')}']`,
      'scrape_configs:',
      '  - job_name: aftercall-workers',
      `    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]`,
    ].join('\n'),
  );
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(workdir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(workdir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: 'ignore' },
  );
  await waitUntil(
    () =>
      fetch(`${prometheusUrl}/-/ready`).then(
        (r) => r.status,
        () => 0,
      ),
    (status) => status === 200,
    'prometheus to be ready',
    30_000,
  );
  await waitUntil(
    async () => (await query('up{job="aftercall-workers"} == 1')).data?.result.length ?? 0,
    (n) => n === 1,
    'the worker to be scraped',
    30_000,
  );
  // Enough scrapes for rates and increases over the windows the rules use.
  await waitUntil(
    async () =>
      (
        await query(
          'sum(aftercall_tasks_dead_lettered_total{reason="expired"}) > 0 and sum(aftercall_sweeper_runs_total) > 3',
        )
      ).data?.result.length ?? 0,
    (n) => n > 0,
    'expired tasks and sweeps to show',
    45_000,
  );
  await waitUntil(
    async () => {
      const missing: string[] = [];
      for (const expr of DESTINATIONS_SEEN) if (!(await query(expr)).data?.result.length) missing.push(expr);
      return missing;
    },
    (missing) => missing.length === 0,
    'an open circuit, 429s and waits for a rate limit and a circuit to show (last value: the ones missing)',
    60_000,
    250,
  );
  await new Promise((resolve) => setTimeout(resolve, 4_000));
}, 180_000);

afterAll(async () => {
  feeding = false;
  prometheus?.kill('SIGTERM');
  await worker?.close();
  await sandbox?.close();
  await removePrefix(client, prefix);
  client.disconnect();
  rmSync(workdir, { recursive: true, force: true });
});

describe('dashboard and alert rules against a real Prometheus', () => {
  it('every dashboard panel query parses and returns series', async () => {
    const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/dashboards/aftercall.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const failures: string[] = [];
    let checked = 0;
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const expr = target.expr.replace(/\$\{?(type|instance)\}?/g, '.*').replace(/\$__rate_interval/g, '1m');
        const answer = await query(expr);
        checked += 1;
        if (answer.status !== 'success') failures.push(`${panel.title}: ${answer.error}`);
        else if (!answer.data!.result.length) failures.push(`${panel.title}: no series for ${expr}`);
      }
    }
    expect(checked).toBeGreaterThan(10);
    expect(failures).toEqual([]);
  });

  it('every alert expression parses, and each of its signals returns series', async () => {
    const rules = (
      parseYaml(readFileSync(join(root, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
        groups: { rules: { alert: string; expr: string }[] }[];
      }
    ).groups.flatMap((group) => group.rules);
    expect(rules.length).toBeGreaterThanOrEqual(8);
    const failures: string[] = [];
    for (const rule of rules) {
      const whole = await query(rule.expr);
      if (whole.status !== 'success') failures.push(`${rule.alert}: does not evaluate: ${whole.error}`);
      const signals = signalQueries(rule.expr);
      if (!signals.length) failures.push(`${rule.alert}: no signal found in ${rule.expr}`);
      for (const signal of signals) {
        const answer = await query(signal);
        if (answer.status !== 'success') failures.push(`${rule.alert}: ${answer.error} in ${signal}`);
        else if (!answer.data!.result.length) failures.push(`${rule.alert}: no series for ${signal}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('loads the rules into Prometheus and evaluates them', async () => {
    const response = (await (await fetch(`${prometheusUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const loaded = response.data.groups.flatMap((group) => group.rules);
    expect(loaded.length).toBeGreaterThanOrEqual(8);
    expect(loaded.filter((rule) => rule.health !== 'ok').map((rule) => `${rule.name}: ${rule.lastError}`)).toEqual([]);
  });

  it("shows the destinations' circuits, holds and waits: every new series has data", async () => {
    // The beforeAll waited for these; each one on its own, for a clear message if one is missing.
    for (const expr of DESTINATIONS_SEEN) {
      const answer = await query(expr);
      expect(answer.status, expr).toBe('success');
      expect(answer.data!.result, expr).toHaveLength(1);
    }
    // One state per destination at a time, in each scrape.
    const states = await query('sum by (destination) (aftercall_destination_state)');
    expect(states.data!.result.length).toBeGreaterThanOrEqual(6);
    for (const series of states.data!.result as { metric: { destination: string }; value: [number, string] }[]) {
      expect(series.value[1], series.metric.destination).toBe('1');
    }
  });

  it("runs the KEDA ScaledObjects' queries (deploy/kubernetes): one number per worker group", async () => {
    const scaledObjects = parseAllDocuments(
      readFileSync(join(root, 'deploy/kubernetes/base/scaled-objects.yaml'), 'utf8'),
    )
      .map((document) => document.toJSON() as { kind?: string; spec?: { triggers: { metadata: { query: string } }[] } })
      .filter((manifest) => manifest?.kind === 'ScaledObject');
    expect(scaledObjects.length).toBeGreaterThan(1);
    for (const scaledObject of scaledObjects) {
      const { query: expr } = scaledObject.spec!.triggers[0]!.metadata;
      const answer = await query(expr);
      expect(answer.status, expr).toBe('success');
      // KEDA's Prometheus scaler needs a single-element vector (or a scalar) holding a number.
      expect(answer.data!.resultType, expr).toBe('vector');
      expect(answer.data!.result, expr).toHaveLength(1);
      const [, value] = (answer.data!.result[0] as { value: [number, string] }).value;
      expect(Number.isFinite(Number(value)) && Number(value) >= 0, `${expr} = ${value}`).toBe(true);
    }
  });
});
