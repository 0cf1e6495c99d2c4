/**
 * deploy/kubernetes: the kustomize base and every overlay, rendered with `kubectl kustomize`
 * (no cluster needed), validated against the Kubernetes, KEDA and Prometheus Operator
 * schemas (kubernetes-models, @kubernetes-models/keda, @kubernetes-models/prometheus-operator),
 * and checked against the code: every variable is one the code reads and the configuration
 * loads as it stands; the workers' port and probes are the ones a real worker serves with
 * that configuration; the queue groups cover the catalog once; the KEDA queries read the
 * gauge the workers export (they run against a real Prometheus in prometheus-e2e.test.ts);
 * selectors, port names and the grace period agree. The pods run as the image's user,
 * non-root, with a read-only root filesystem and resources set.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { configVariables, loadConfig } from '../src/config/environment.js';
import { parseDuration } from '../src/contract/time.js';
import { taskTypes } from '../src/tasks/catalog.js';
import { createWorkerMetrics } from '../src/worker/worker-metrics.js';
import { startWorker } from '../src/worker/worker.js';
import { freePort } from './helpers/free-port.js';
import { redis, REDIS_URL, uniquePrefix } from './helpers/redis.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const kubernetesDir = join(root, 'deploy/kubernetes');
const overlays = readdirSync(join(kubernetesDir, 'overlays'));
const targets = ['base', ...overlays.map((name) => `overlays/${name}`)];

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML, checked field by field below
type Manifest = Record<string, any>;

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
if (kubectl.error) throw new Error('kubectl is not installed: it renders the kustomizations (`kubectl kustomize`)');

function render(target: string): Manifest[] {
  const result = spawnSync('kubectl', ['kustomize', join(kubernetesDir, target)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${target} failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => document.toJSON() as Manifest);
}
const rendered = new Map(targets.map((target) => [target, render(target)]));

const MODELS: Record<string, { validate(): void } & (new (data: Manifest) => { validate(): void })> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
} as never;

const of = (manifests: Manifest[], kind: string) => manifests.filter((manifest) => manifest.kind === kind);
const named = (manifests: Manifest[], kind: string, name: string) => {
  const found = manifests.find((manifest) => manifest.kind === kind && manifest.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};
const workers = (manifests: Manifest[]) =>
  of(manifests, 'Deployment').filter(
    (deployment) => deployment.metadata.labels?.['app.kubernetes.io/component'] === 'worker',
  );
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** The environment a container gets from its envFrom ConfigMap and Secrets (stringData as written). */
function environmentOf(manifests: Manifest[], container: Manifest): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, named(manifests, 'ConfigMap', source.configMapRef.name).data);
    if (source.secretRef) Object.assign(env, named(manifests, 'Secret', source.secretRef.name).stringData);
  }
  for (const variable of container.env ?? []) env[variable.name] = variable.value;
  return env;
}

/** Paths mounted into the container exist only in a pod: point file variables at a local file. */
const scratch = mkdtempSync(join(tmpdir(), 'aftercall-k8s-'));
const placeholderPem = join(scratch, 'placeholder.pem');
writeFileSync(placeholderPem, 'placeholder\n');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
function locally(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [name, name.endsWith('_FILE') ? placeholderPem : value]),
  );
}

describe.each(targets)('deploy/kubernetes/%s', (target) => {
  const manifests = rendered.get(target)!;

  it('validates against the Kubernetes, KEDA and Prometheus Operator schemas', () => {
    expect(manifests.length).toBeGreaterThan(10);
    for (const manifest of manifests) {
      const key = `${manifest.apiVersion}/${manifest.kind}`;
      const Model = MODELS[key];
      expect(Model, `a schema for ${key}`).toBeDefined();
      expect(() => new Model!(manifest).validate(), `${key} ${manifest.metadata?.name}`).not.toThrow();
    }
    const kinds = new Set(manifests.map((manifest) => manifest.kind));
    for (const kind of Object.keys(MODELS).map((key) => key.split('/').pop()))
      expect(kinds, `a ${kind}`).toContain(kind);
  });

  it('sets only variables the code reads, and they load as a valid configuration in one Redis mode', () => {
    const known = new Set(configVariables().map((variable) => variable.name));
    // The API's own variables (src/http/environment.ts) are read only by `aftercall serve`.
    const httpSource = readFileSync(join(root, 'src/http/environment.ts'), 'utf8');
    for (const deployment of of(manifests, 'Deployment')) {
      for (const container of deployment.spec.template.spec.containers) {
        const env = environmentOf(manifests, container);
        for (const name of Object.keys(env)) {
          expect(
            known.has(name) || new RegExp(`^  ${name}:`, 'm').test(httpSource),
            `${name} is read by the code`,
          ).toBe(true);
        }
        const config = loadConfig(locally(env));
        expect(['standalone', 'cluster', 'sentinel']).toContain(config.redis.mode);
      }
    }
  });

  it('runs the workers non-root on a read-only root filesystem, with resources and probes on the metrics port', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m); // uid 1000 in the node image
    for (const deployment of of(manifests, 'Deployment')) {
      const pod = deployment.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
      for (const container of pod.containers) {
        expect(container.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(container.resources.requests.cpu).toBeDefined();
        expect(container.resources.requests.memory).toBeDefined();
        expect(container.resources.limits.memory).toBeDefined();
        // Node writes to /tmp only; it is a volume, not the root filesystem.
        expect(container.volumeMounts.map((mount: Manifest) => mount.mountPath)).toContain('/tmp');
        expect(existsSync(join(root, container.args[1]))).toBe(true); // bin/aftercall.js
      }
    }
    for (const deployment of workers(manifests)) {
      const pod = deployment.spec.template.spec;
      const container = pod.containers[0];
      const config = loadConfig(locally(environmentOf(manifests, container)));
      const port = container.ports.find((candidate: Manifest) => candidate.name === 'metrics');
      expect(port.containerPort).toBe(config.metricsPort);
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      // SIGTERM, then SHUTDOWN_GRACE for active jobs, then exit: the pod must be given longer.
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.worker.shutdownGraceMs);
      expect(parseDuration(environmentOf(manifests, container).SHUTDOWN_GRACE ?? '25s')).toBe(
        config.worker.shutdownGraceMs,
      );
    }
  });

  it('has one worker Deployment per queue group, covering every task type once', () => {
    const served = workers(manifests).flatMap((deployment) => {
      const args: string[] = deployment.spec.template.spec.containers[0].args;
      expect(args.slice(0, 3)).toEqual(['node', 'bin/aftercall.js', 'worker']);
      return args[args.indexOf('--queues') + 1]!.split(',');
    });
    expect([...served].sort()).toEqual([...taskTypes].sort());
    expect(workers(manifests).length).toBeGreaterThan(1);
  });

  it('scales each worker group with KEDA on its own types in aftercall_queue_jobs (Prometheus scaler)', () => {
    const exported = createWorkerMetrics({ client: redis(), prefix: 'unused' }).registry.getSingleMetric(
      'aftercall_queue_jobs',
    ) as unknown as { labelNames: string[] };
    expect(exported.labelNames).toEqual(['type', 'state']);
    const scaled = of(manifests, 'ScaledObject');
    expect(scaled.length).toBe(workers(manifests).length);
    for (const deployment of workers(manifests)) {
      const object = scaled.find((candidate) => candidate.spec.scaleTargetRef.name === deployment.metadata.name);
      expect(object, `a ScaledObject for ${deployment.metadata.name}`).toBeDefined();
      const args: string[] = deployment.spec.template.spec.containers[0].args;
      const queues = args[args.indexOf('--queues') + 1]!.split(',');
      expect(object!.spec.triggers).toHaveLength(1);
      const [trigger] = object!.spec.triggers;
      expect(trigger.type).toBe('prometheus'); // never `redis`: the list scaler misses delayed and retrying jobs
      const query: string = trigger.metadata.query;
      expect(query).toContain('aftercall_queue_jobs');
      expect(query).toMatch(/max by \(type, state\)/); // identical on every pod: max, never sum, across pods
      expect(/type=~"([^"]+)"/.exec(query)?.[1]?.split('|').sort()).toEqual([...queues].sort());
      expect(/state=~"([^"]+)"/.exec(query)?.[1]?.split('|').sort()).toEqual(['retrying', 'waiting']);
      expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
      expect(object!.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    }
  });

  it('selects real pods and ports from its Services, PodMonitors, budgets and network policies', () => {
    const pods = of(manifests, 'Deployment').map((deployment) => ({
      labels: deployment.spec.template.metadata.labels as Record<string, string>,
      ports: deployment.spec.template.spec.containers.flatMap((container: Manifest) => container.ports) as Manifest[],
    }));
    const selected = (selector: Record<string, string>) => pods.filter((pod) => matches(selector, pod.labels));
    for (const service of of(manifests, 'Service')) {
      const [pod] = selected(service.spec.selector);
      for (const port of service.spec.ports)
        expect(pod!.ports.map((candidate) => candidate.name)).toContain(port.targetPort);
    }
    for (const monitor of of(manifests, 'PodMonitor')) {
      const chosen = selected(monitor.spec.selector.matchLabels);
      expect(chosen.length, monitor.metadata.name).toBeGreaterThan(0);
      for (const endpoint of monitor.spec.podMetricsEndpoints)
        for (const pod of chosen) expect(pod.ports.map((port) => port.name)).toContain(endpoint.port);
    }
    expect(
      of(manifests, 'PodMonitor').some((monitor) =>
        monitor.spec.podMetricsEndpoints.some((endpoint: Manifest) =>
          endpoint.relabelings?.some((rule: Manifest) => rule.replacement === 'aftercall-workers'),
        ),
      ),
      'the job label the alerts and dashboard use',
    ).toBe(true);
    for (const budget of of(manifests, 'PodDisruptionBudget'))
      expect(selected(budget.spec.selector.matchLabels).length, budget.metadata.name).toBe(1);
    for (const deployment of of(manifests, 'Deployment')) {
      const labels = deployment.spec.template.metadata.labels;
      expect(
        of(manifests, 'PodDisruptionBudget').some((budget) => matches(budget.spec.selector.matchLabels, labels)),
      ).toBe(true);
      expect(
        of(manifests, 'NetworkPolicy').some((policy) => matches(policy.spec.podSelector.matchLabels, labels)),
      ).toBe(true);
    }
  });
});

describe('the API Deployment', () => {
  it('runs `aftercall serve` on HTTP_PORT, with its probes', () => {
    const manifests = rendered.get('base')!;
    const api = named(manifests, 'Deployment', 'aftercall-api');
    const container = api.spec.template.spec.containers[0];
    expect(container.args).toEqual(['node', 'bin/aftercall.js', 'serve']);
    const serve = join(root, 'src/cli/commands/serve.ts');
    expect(existsSync(serve) && readFileSync(serve, 'utf8')).toMatch(/name: 'serve'/);
    const env = environmentOf(manifests, container);
    const port = container.ports.find((candidate: Manifest) => candidate.name === 'http');
    expect(port.containerPort).toBe(Number(env.HTTP_PORT));
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    const routes = readFileSync(join(root, 'src/http/routes/operations.ts'), 'utf8');
    for (const path of ['/healthz', '/readyz', '/metrics']) expect(routes).toContain(`'${path}'`);
  });
});

describe('the worker pod configuration, run for real', () => {
  it('serves /healthz and /readyz where the probes look, with the ConfigMap of the base', async () => {
    const manifests = rendered.get('base')!;
    const [deployment] = workers(manifests);
    const container = deployment!.spec.template.spec.containers[0];
    const port = await freePort();
    const args: string[] = container.args;
    const queues = args[args.indexOf('--queues') + 1]!.split(',') as (typeof taskTypes)[number][];
    const env = {
      ...environmentOf(manifests, container),
      REDIS_URL,
      AFTERCALL_PREFIX: uniquePrefix('k8s'),
      METRICS_PORT: String(port),
      LOG_LEVEL: 'silent',
    };
    const worker = await startWorker({ config: loadConfig(env), queues, sweeper: false });
    try {
      await worker.ready;
      for (const probe of [container.livenessProbe, container.readinessProbe]) {
        const response = await fetch(`http://127.0.0.1:${port}${probe.httpGet.path}`);
        expect(response.status, probe.httpGet.path).toBe(200);
      }
    } finally {
      await worker.close();
    }
  });
});
