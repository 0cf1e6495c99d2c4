/**
 * `aftercall sandbox [options]`: runs the provider sandbox (src/sandbox/) in the
 * foreground: local fakes of Resend, Twilio and a Standard Webhooks receiver, with fault
 * injection. It prints its URL and the environment a worker needs to deliver to it, then
 * runs until SIGINT or SIGTERM, closes and exits 0. A bad option exits 2 naming it.
 */
import { isWebhookSecret } from '../../src/delivery/providers/webhook/provider.js';
import { E164 } from '../../src/contract/conversation-outcome.js';
import { catalog } from '../../src/tasks/catalog.js';
import { ValidationError } from '../../src/contract/validation-error.js';
import { parseDuration } from '../../src/contract/time.js';
import { DESTINATION_EXPECTED, isDestinationName } from './destinations.js';
import { describeLimit } from './rate-limits.js';
import {
  SANDBOX_WEBHOOK_SECRET,
  startSandbox,
  type FaultChange,
  type OutageChange,
  type RateLimitChange,
  type Sandbox,
} from './sandbox.js';
import { fraction, integer, type ParsedArgs, UsageError } from '../../src/cli/args.js';
import { commandContext, defineCommand, runCommand } from '../../src/cli/command.js';
import type { CommandIO } from '../../src/cli/io.js';

export const SANDBOX_HELP = `aftercall sandbox: local fakes of Resend, Twilio and a signed-webhook receiver

Usage: aftercall sandbox [options]

  --port N               port to listen on (default 4010; 0 = any free port)
  --host HOST            address to listen on (default 127.0.0.1)
  --webhook-secret S     Standard Webhooks secret, whsec_<base64 of 16+ bytes>
                         (default: the public test secret ${SANDBOX_WEBHOOK_SECRET})
  --rate-limit F         fraction 0..1 of provider requests answered 429
  --retry-after S        Retry-After of those answers, in whole seconds (default 1)
  --server-errors F      fraction 0..1 answered 500, 502 or 503
  --hangs F              fraction 0..1 processed and recorded, but answered only after --hang-ms
  --hang-ms MS           how long a hung answer is held (default 30000)
  --latency MIN-MAX      milliseconds added to every provider answer, uniform in MIN..MAX
                         (or one number)
  --terminal LIST        comma-separated e-mail addresses / E.164 numbers that always get
                         a terminal error
  --seed N               seed of the fault generator (default: random, printed at start)
  --rate-limit-per-second N | DEST=N
                         a real limit: at most N requests per one-second window (fixed,
                         aligned to the clock) at every destination, or at DEST only;
                         above it the destination answers 429 as the provider does
                         (Resend: rate_limit_exceeded with ratelimit-* headers on every
                         answer; Twilio: code 20429; webhooks: retry-after, ratelimit-*).
                         Repeatable: --rate-limit-per-second 10 --rate-limit-per-second resend=2
  --outage DEST:DURATION an outage from the start: DEST answers 503 to every request for
                         DURATION (25s, 2m, 1h; at most 1d). Repeatable
  --gone webhook:TYPE    that webhook path answers 410 Gone to every request, as a
                         removed endpoint does. Repeatable
  -h, --help             this text

Destinations (DEST): resend, twilio, webhook:<type> (one per webhook path).

The three fractions share one roll and may add up to at most 1; --rate-limit draws 429s
by chance, --rate-limit-per-second is a standing limit. Faults, limits and outages can
also be changed while it runs: PUT /_sandbox/faults with a JSON object, e.g.
  curl -X PUT localhost:4010/_sandbox/faults -d '{"rateLimitRate":0.2}'
  curl -X PUT localhost:4010/_sandbox/faults -d '{"limits":{"resend":3,"webhook:update_crm":5}}'
  curl -X PUT localhost:4010/_sandbox/faults -d '{"limits":{"twilio":{"limit":100,"windowMs":60000}}}'
  curl -X PUT localhost:4010/_sandbox/faults -d '{"outages":{"resend":{"durationMs":25000}}}'
  curl -X PUT localhost:4010/_sandbox/faults -d '{"outages":{"twilio":{}}}'     (until cleared)
  curl -X PUT localhost:4010/_sandbox/faults -d '{"outages":{"twilio":null}}'   (clear it)
  curl -X PUT localhost:4010/_sandbox/faults -d '{"gone":["webhook:update_crm"]}'   ([] to undo)
A limit or outage set to null is removed; "limits":null or "outages":null removes them all.
Deliveries: GET /_sandbox/deliveries[?provider=resend|twilio|webhook] (with the rejected
requests); traffic per destination and second, with the most requests seen in any window:
GET /_sandbox/stats[?destination=DEST][&windowMs=N][&from=ISO]; POST /_sandbox/reset.
`;

export interface SandboxCommandOptions {
  /** Stops the sandbox like SIGTERM does (for tests and embedding). */
  signal?: AbortSignal;
}

function latency(text: string | undefined): { min: number; max: number } | undefined {
  if (text === undefined) return undefined;
  const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
  const min = match ? Number(match[1]) : NaN;
  const max = match ? Number(match[2] ?? match[1]) : NaN;
  if (!match || min > max || max > 3_600_000)
    throw new UsageError(
      `--latency: expected MIN-MAX in milliseconds with MIN <= MAX <= 3600000 (e.g. 20-150), got ${JSON.stringify(text)}`,
    );
  return { min, max };
}

const EMAIL = /^[^@\s,]+@[^@\s,]+$/;

function terminalList(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const wrong = entries.filter((entry) => !EMAIL.test(entry) && !E164.test(entry));
  if (!entries.length || wrong.length) {
    throw new UsageError(
      `--terminal: expected comma-separated e-mail addresses or E.164 numbers (+14155550100)${wrong.length ? `; not one: ${wrong.map((entry) => JSON.stringify(entry)).join(', ')}` : ''}`,
    );
  }
  return entries;
}

const MAX_LIMIT = 1_000_000;
const DAY_MS = 86_400_000;

/** `--rate-limit-per-second N` (every destination, `*`) or `DEST=N`, repeatable. */
function perSecondLimits(texts: string[] | undefined): Record<string, RateLimitChange> | undefined {
  if (!texts?.length) return undefined;
  const limits: Record<string, RateLimitChange> = {};
  for (const text of texts) {
    const match = /^\s*(?:([^=\s]+)\s*=\s*)?(\d+)\s*$/.exec(text);
    const count = match ? Number(match[2]) : Number.NaN;
    if (!match || !(count >= 1 && count <= MAX_LIMIT)) {
      throw new UsageError(
        `--rate-limit-per-second: expected N or DEST=N with N a whole number of requests from 1 to ${MAX_LIMIT}, got ${JSON.stringify(text)}`,
      );
    }
    const destination = match[1] ?? '*';
    if (destination !== '*' && !isDestinationName(destination)) {
      throw new UsageError(`--rate-limit-per-second: ${JSON.stringify(destination)}: ${DESTINATION_EXPECTED}`);
    }
    limits[destination] = count;
  }
  return limits;
}

/** `--outage DEST:DURATION`, repeatable; the duration is the text after the last colon and needs a unit. */
function outages(texts: string[] | undefined): Record<string, OutageChange> | undefined {
  if (!texts?.length) return undefined;
  const changes: Record<string, OutageChange> = {};
  for (const text of texts) {
    const colon = text.lastIndexOf(':');
    const destination = colon > 0 ? text.slice(0, colon).trim() : '';
    const durationText = colon > 0 ? text.slice(colon + 1).trim() : '';
    if (!isDestinationName(destination)) {
      throw new UsageError(
        `--outage: expected DEST:DURATION (e.g. resend:25s, webhook:update_crm:2m) with DEST one of resend, twilio, webhook:<type>, got ${JSON.stringify(text)}`,
      );
    }
    const durationMs = /[a-z]$/i.test(durationText) ? parseDuration(durationText) : undefined;
    if (durationMs === undefined || durationMs < 1 || durationMs > DAY_MS) {
      throw new UsageError(
        `--outage ${destination}: expected a duration with a unit, from 1ms to 1d (e.g. 25s, 2m), got ${JSON.stringify(durationText)}`,
      );
    }
    changes[destination] = { durationMs };
  }
  return changes;
}

/** `--gone webhook:TYPE`, repeatable. */
function goneList(texts: string[] | undefined): string[] | undefined {
  if (!texts?.length) return undefined;
  for (const text of texts) {
    if (!text.startsWith('webhook:') || !isDestinationName(text)) {
      throw new UsageError(
        `--gone: expected webhook:<type> (letters, digits, _ - .), e.g. webhook:update_crm, got ${JSON.stringify(text)}`,
      );
    }
  }
  return texts;
}

function checkWebhookSecret(secret: string): void {
  // The same rule as the workers' WEBHOOK_SECRET: a secret the sandbox prints, they accept.
  if (!isWebhookSecret(secret))
    throw new UsageError('--webhook-secret: expected whsec_ followed by at least 16 bytes in base64');
}

/** The environment a worker needs to deliver everything to this sandbox. */
export function sandboxEnvironment(
  sandbox: Pick<Sandbox, 'resendBaseUrl' | 'twilioApiBase' | 'webhookUrl' | 'webhookSecret'>,
): [string, string][] {
  return [
    ['RESEND_BASE_URL', sandbox.resendBaseUrl],
    ['TWILIO_API_BASE', sandbox.twilioApiBase],
    ...catalog.map((definition): [string, string] => [
      definition.webhookUrlVariable,
      sandbox.webhookUrl(definition.type),
    ]),
    ['WEBHOOK_SECRET', sandbox.webhookSecret],
  ];
}

function describeFaults(sandbox: Sandbox): string {
  const faults = sandbox.faults();
  const { min, max, tailRate, tailMs } = faults.latencyMs;
  return [
    `rate limit ${faults.rateLimitRate} (Retry-After ${faults.retryAfterSeconds} s)`,
    `server errors ${faults.serverErrorRate}`,
    `hangs ${faults.hangRate} (${faults.hangMs} ms)`,
    `latency ${min}-${max} ms${tailRate ? ` + ${tailMs} ms at ${tailRate}` : ''}`,
    `terminal recipients ${faults.terminalRecipients.length ? faults.terminalRecipients.join(', ') : 'none'}`,
    `limits ${
      Object.entries(faults.limits)
        .map(([destination, { limit, windowMs }]) => `${destination} ${describeLimit(limit, windowMs)}`)
        .join('; ') || 'none'
    }`,
    `outages ${
      Object.entries(faults.outages)
        .map(([destination, { until }]) => `${destination} until ${until ?? 'cleared'}`)
        .join('; ') || 'none'
    }`,
    `gone ${faults.gone.join(', ') || 'none'}`,
  ].join(', ');
}

/** Parses the options into what startSandbox takes. */
function sandboxOptions(values: ParsedArgs<typeof options>['values']) {
  const port = integer('port', values.port, { max: 65_535, unit: 'a port' }) ?? 4010;
  const host = values.host ?? '127.0.0.1';
  if (!host.trim()) throw new UsageError('--host: expected a host name or address');
  const webhookSecret = values['webhook-secret'];
  if (webhookSecret !== undefined) checkWebhookSecret(webhookSecret);
  const change: FaultChange = {};
  const rateLimitRate = fraction('rate-limit', values['rate-limit']);
  const serverErrorRate = fraction('server-errors', values['server-errors']);
  const hangRate = fraction('hangs', values.hangs);
  if ((rateLimitRate ?? 0) + (serverErrorRate ?? 0) + (hangRate ?? 0) > 1) {
    throw new UsageError('--rate-limit + --server-errors + --hangs: expected at most 1 together (they share one roll)');
  }
  if (rateLimitRate !== undefined) change.rateLimitRate = rateLimitRate;
  if (serverErrorRate !== undefined) change.serverErrorRate = serverErrorRate;
  if (hangRate !== undefined) change.hangRate = hangRate;
  const retryAfterSeconds = integer('retry-after', values['retry-after'], { max: 86_400, unit: 'whole seconds' });
  if (retryAfterSeconds !== undefined) change.retryAfterSeconds = retryAfterSeconds;
  const hangMs = integer('hang-ms', values['hang-ms'], { max: 3_600_000, unit: 'milliseconds' });
  if (hangMs !== undefined) change.hangMs = hangMs;
  const latencyMs = latency(values.latency);
  if (latencyMs) change.latencyMs = latencyMs;
  const terminalRecipients = terminalList(values.terminal);
  if (terminalRecipients) change.terminalRecipients = terminalRecipients;
  const limits = perSecondLimits(values['rate-limit-per-second']);
  if (limits) change.limits = limits;
  const down = outages(values.outage);
  if (down) change.outages = down;
  const gone = goneList(values.gone);
  if (gone) change.gone = gone;
  const seed = integer('seed', values.seed, { max: 2 ** 32 - 1 });
  return {
    port,
    host,
    faults: change,
    ...(webhookSecret !== undefined && { webhookSecret }),
    ...(seed !== undefined && { seed }),
  };
}

const options = {
  port: { type: 'string' },
  host: { type: 'string' },
  'webhook-secret': { type: 'string' },
  'rate-limit': { type: 'string' },
  'retry-after': { type: 'string' },
  'server-errors': { type: 'string' },
  hangs: { type: 'string' },
  'hang-ms': { type: 'string' },
  latency: { type: 'string' },
  terminal: { type: 'string' },
  seed: { type: 'string' },
  'rate-limit-per-second': { type: 'string', multiple: true },
  outage: { type: 'string', multiple: true },
  gone: { type: 'string', multiple: true },
} as const;

export const command = defineCommand({
  name: 'sandbox',
  synopsis: ['aftercall sandbox [--port 4010] [--help]'],
  summary: 'Local fakes of Resend, Twilio and a Standard Webhooks receiver, with fault injection.',
  help: SANDBOX_HELP,
  options,
  async run({ values }, { io, signal }) {
    const settings = sandboxOptions(values);
    let sandbox: Sandbox;
    try {
      sandbox = await startSandbox(settings);
    } catch (error) {
      if (error instanceof ValidationError) throw new UsageError(error.message);
      const code = (error as NodeJS.ErrnoException).code;
      const reason =
        code === 'EADDRINUSE'
          ? 'the address is in use'
          : code === 'EADDRNOTAVAIL'
            ? 'no such local address'
            : (error as Error).message;
      throw new Error(`cannot listen on ${settings.host}:${settings.port}: ${reason}`);
    }
    const { url } = sandbox;
    io.stdout.write(
      [
        `aftercall sandbox listening on ${url} (seed ${sandbox.seed})`,
        '',
        `  Resend    POST ${url}/emails`,
        `  Twilio    POST ${url}/2010-04-01/Accounts/{AccountSid}/Messages.json`,
        `  webhooks  POST ${url}/webhooks/<type>`,
        `  control   GET|PUT ${url}/_sandbox/faults   POST ${url}/_sandbox/reset`,
        `  read      GET ${url}/_sandbox/deliveries[?provider=resend|twilio|webhook]   GET ${url}/_sandbox/health`,
        `  traffic   GET ${url}/_sandbox/stats[?destination=resend|twilio|webhook:<type>]`,
        '',
        `Faults: ${describeFaults(sandbox)}`,
        '',
        '# environment for a worker that delivers to this sandbox:',
        ...sandboxEnvironment(sandbox).map(([name, value]) => `export ${name}=${value}`),
        '# the sandbox accepts any credentials; to send e-mail and SMS through its Resend and Twilio fakes, also:',
        `# export RESEND_API_KEY=re_sandbox EMAIL_FROM=sandbox@example.com TWILIO_ACCOUNT_SID=AC${'0'.repeat(32)} TWILIO_AUTH_TOKEN=sandbox TWILIO_FROM=+15005550006`,
        '',
        'Stop with Ctrl-C (SIGINT) or SIGTERM.',
        '',
      ].join('\n'),
    );

    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        signal?.removeEventListener('abort', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      if (signal?.aborted) stop();
      else signal?.addEventListener('abort', stop, { once: true });
    });
    const stats = sandbox.stats();
    await sandbox.close();
    io.stdout.write(
      `aftercall sandbox stopped after ${stats.requests} provider requests, ${sandbox.deliveries().length} deliveries\n`,
    );
    return 0;
  },
});

/** Runs `aftercall sandbox` with these arguments, outside main (tests and embedding). */
export const sandboxCommand = (args: string[], io: CommandIO, options: SandboxCommandOptions = {}): Promise<number> =>
  runCommand(command, args, commandContext(io, options.signal));
