/**
 * The demo's plan: what `aftercall demo` will do, decided before anything starts. Its
 * options, the synthetic load (outcomes and the recipients the providers will refuse), the
 * sandbox's faults, and the environment of the worker processes. No I/O here: demo-run.ts
 * carries the plan out, demo-report.ts describes the result.
 */
import type { ParsedArgs } from '../../src/cli/args.js';
import { choice, fraction, integer, number } from '../../src/cli/args.js';
import type { AftercallConfig } from '../../src/config/environment.js';
import type { ConversationOutcome } from '../../src/contract/conversation-outcome.js';
import type { ProducerOptions } from '../../src/producer/producer.js';
import type { FaultChange, Sandbox } from '../sandbox/sandbox.js';
import { sandboxEnvironment } from '../sandbox/sandbox-command.js';
import { refusedRecipients, syntheticOutcome } from '../synthetic-load.js';

export const DEMO_HELP = `aftercall demo: the whole fleet on one machine (needs only Redis at REDIS_URL)

Options:
  --scenario NAME       burst (default): a short burst of random provider faults;
                        rate-limit: Resend at a standing limit of 3 requests per second, the fleet
                        configured with it (RESEND_RATE_LIMIT=3/s);
                        outage: Resend down (503) for --outage-seconds from the start
  --outage-seconds S    length of the outage scenario's outage (default 25)
  --conversations N     conversations in the synthetic load (default 200)
  --bad-recipients F    share of customers whose e-mail/phone the providers refuse (default 0.05)
  --late F              share of conversations that ended 45 minutes ago (their e-mail expired) (default 0.03)
  --fault-rate F        share of provider requests failing during the fault burst (default 0.3)
  --burst-seconds S     length of the fault burst at the start (default 3)
  --workers N           worker processes (default 2)
  --timeout S           give up waiting after S seconds (default 120)
  --keep                keep the demo's Redis keys (prefix printed at the start)
  --help                this text
`;

export const demoOptions = {
  scenario: { type: 'string' },
  'outage-seconds': { type: 'string' },
  conversations: { type: 'string' },
  'bad-recipients': { type: 'string' },
  late: { type: 'string' },
  'fault-rate': { type: 'string' },
  'burst-seconds': { type: 'string' },
  workers: { type: 'string' },
  timeout: { type: 'string' },
  keep: { type: 'boolean' },
} as const;

/**
 * How the burst's failing share `faultRate` (0..1) splits: 45 % rate limits, 45 % server
 * errors, 10 % requests that hang past the client timeout; together exactly `faultRate`.
 */
export function burstFaults(faultRate: number): { rateLimitRate: number; serverErrorRate: number; hangRate: number } {
  return { rateLimitRate: faultRate * 0.45, serverErrorRate: faultRate * 0.45, hangRate: faultRate * 0.1 };
}

/** The burst is over: no more injected failures (latency and refused recipients stay). */
export const AFTER_BURST: FaultChange = { rateLimitRate: 0, serverErrorRate: 0, hangRate: 0 };

export const DEMO_SCENARIOS = ['burst', 'rate-limit', 'outage'] as const;
export type DemoScenario = (typeof DEMO_SCENARIOS)[number];

/** The rate-limit scenario's limit: Resend's, in requests per second (Resend documents 2 to 5 per team). */
export const SCENARIO_RESEND_LIMIT = 3;

export interface DemoPlan {
  runId: string;
  /**
   * burst: random faults for a while. rate-limit and outage: a provider that behaves like one
   * (a standing limit; a stretch of 503s) and no random faults, so anything exhausted is the
   * provider's doing; the progress shows each destination's rate and circuit.
   */
  scenario: DemoScenario;
  /** The outage scenario: how long Resend is down, from the start. */
  outageSeconds: number;
  /** Key prefix of the run: its keys only, removed at the end unless `keep`. */
  prefix: string;
  workers: number;
  faultRate: number;
  /** How long the fault burst lasts, from the end of enqueueing. */
  burstSeconds: number;
  /** How long to wait for every task to settle. */
  timeoutSeconds: number;
  keep: boolean;
  outcomes: ConversationOutcome[];
  /** The sandbox's faults at the start: the burst, some latency, the refused recipients. */
  faults: FaultChange;
  /** Faults that start with the load, once every worker serves (the outage scenario's outage). */
  startFaults?: FaultChange;
  /** The producer's task settings. */
  tasks: NonNullable<ProducerOptions['tasks']>;
}

/** The plan for these options; `runId` names the run (conversation ids and the key prefix carry it). */
export function planDemo(values: ParsedArgs<typeof demoOptions>['values'], runId: string, now: number): DemoPlan {
  const scenario = choice('scenario', values.scenario, DEMO_SCENARIOS) ?? 'burst';
  const outageSeconds = number('outage-seconds', values['outage-seconds'], { max: 600 }) ?? 25;
  const conversations = integer('conversations', values.conversations, { min: 1, max: 100_000 }) ?? 200;
  // The provider scenarios inject no random faults: what happens is the limit's or the outage's doing.
  const faultRate = scenario === 'burst' ? (fraction('fault-rate', values['fault-rate']) ?? 0.3) : 0;
  const burstSeconds = number('burst-seconds', values['burst-seconds'], { max: 600 }) ?? 3;
  const workers = integer('workers', values.workers, { min: 1, max: 16 }) ?? 2;
  const timeoutSeconds = number('timeout', values.timeout, { min: 1, max: 3_600 }) ?? 120;
  const load = {
    runId: `demo-${runId}`,
    now,
    refusedShare: fraction('bad-recipients', values['bad-recipients']) ?? 0.05,
    lateShare: fraction('late', values.late) ?? 0.03,
  };
  return {
    runId,
    scenario,
    outageSeconds,
    prefix: `aftercall-demo-${runId}`,
    workers,
    faultRate,
    burstSeconds,
    timeoutSeconds,
    keep: values.keep ?? false,
    outcomes: Array.from({ length: conversations }, (_, index) => syntheticOutcome(index, load)),
    faults: {
      ...burstFaults(faultRate),
      retryAfterSeconds: 1,
      hangMs: 3_000,
      latencyMs: { min: 5, max: 40, tailRate: 0.02, tailMs: 400 },
      terminalRecipients: refusedRecipients(conversations, load),
      ...(scenario === 'rate-limit' && { limits: { resend: SCENARIO_RESEND_LIMIT } }),
    },
    // The outage starts with the load, once the workers serve (a cold start may take seconds).
    ...(scenario === 'outage' && { startFaults: { outages: { resend: { durationMs: outageSeconds * 1_000 } } } }),
    // The survey normally waits 2 hours; the demo sends it at once.
    tasks: { follow_up_survey: { settings: { delay: 0 } } },
  };
}

/** The environment of the demo's worker processes: this sandbox, short retry timings, the run's prefix. */
export function workerEnvironment(plan: DemoPlan, config: AftercallConfig, sandbox: Sandbox): Record<string, string> {
  return {
    // The workers inherit this process' Redis variables (any mode); a standalone default is made explicit.
    ...(config.redis.mode === 'standalone' && { REDIS_URL: config.redis.url }),
    AFTERCALL_PREFIX: plan.prefix,
    ...Object.fromEntries(sandboxEnvironment(sandbox)),
    RESEND_API_KEY: 're_demo_key',
    EMAIL_FROM: 'aftercall demo <demo@aftercall.example>',
    TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`,
    TWILIO_AUTH_TOKEN: 'demo-token',
    TWILIO_FROM: '+14155550000',
    WEBHOOK_TIMEOUT: '2s',
    RETRY_BASE_DELAY: '200ms',
    RETRY_MAX_DELAY: '2s',
    RETRY_JITTER: '200ms',
    SWEEP_INTERVAL: '1s',
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: '20',
    ...scenarioEnvironment(plan.scenario),
  };
}

/**
 * The provider scenarios' fleet settings. rate-limit: the fleet knows Resend's limit. outage:
 * the production retry policy (2 s, doubling; an e-mail has 3 attempts) and circuit (10 calls,
 * half failing), with a 5 s first cooldown instead of 15 s so the demo is short.
 */
export function scenarioEnvironment(scenario: DemoScenario): Record<string, string> {
  if (scenario === 'rate-limit') return { RESEND_RATE_LIMIT: `${SCENARIO_RESEND_LIMIT}/s` };
  if (scenario === 'outage') {
    return {
      RETRY_BASE_DELAY: '2s',
      RETRY_MAX_DELAY: '60s',
      RETRY_JITTER: '1s',
      CIRCUIT_MIN_CALLS: '10',
      CIRCUIT_FAILURE_RATIO: '0.5',
      CIRCUIT_COOLDOWN: '5s',
    };
  }
  return {};
}
