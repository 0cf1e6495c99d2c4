/**
 * Enqueue latency: conversationEnded of a five-task outcome, sequential calls, against five
 * concurrent raw BullMQ Queue.add calls with the same job options, in the same run. On the
 * Redis at REDIS_URL.
 */
import { Queue } from 'bullmq';
import { createProducer, type ConversationOutcome } from '../src/index.js';
import { cpus } from 'node:os';
import { bookedOutcome } from '../test/helpers/outcomes.js';
import { withRedis } from './harness.js';
import {
  acrossRounds,
  alternating,
  summarize,
  type Benchmark,
  type Entry,
  type Goal,
  type Spread,
  type Summary,
} from './lib.js';
import { claim, reasonParagraph, supported, type Claim } from './reasons.js';
import { fmt, measuredAt, range, verdict } from './report.js';

const HOUR = 3_600_000;
/** The commands that run a script: their time includes the commands the script runs. */
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);
const TYPES = ['send_email', 'update_crm', 'schedule_reminder', 'update_ticket', 'follow_up_survey'] as const;

/** A booked outcome with a ticket and a survey: five tasks. */
const outcome = (id: number, now: number): ConversationOutcome =>
  bookedOutcome(`bench-${id}`, now, {
    ticket: { id: `T-${id}`, status: 'open' },
    summary: 'Booked a check-up for Monday.',
  });

interface Cost {
  /**
   * Redis' time executing the commands the client sent: both sides send scripts only
   * (EVALSHA), whose time includes the commands they run. (Until 1 Dec 2026 this also added
   * the scripts' inner commands, counting them twice: that weighed on the side running more.)
   */
  redisUsPerCall: number;
  clientCpuUsPerCall: number;
  /**
   * Per outcome call, by Redis command (`INFO commandstats`): calls and µs. A script's
   * µs (evalsha) include those of the commands it runs, which are also counted by name.
   */
  byCommand?: Record<string, { calls: number; us: number }>;
}

export interface EnqueueLatency {
  callsPerRound: number;
  ours: { p50: Spread; p99: Spread };
  raw: { p50: Spread; p99: Spread };
  cost: { ours: Cost; raw: Cost };
  ratioP50: number;
  ratioP99: number;
  ratioP99PerRound: Spread;
  goal: Goal;
}

async function run({ quick }: { quick: boolean }): Promise<EnqueueLatency> {
  const calls = quick ? 200 : 2_000;
  const rounds = quick ? 2 : 5;
  const warmup = quick ? 50 : 300;
  // A private redis-server (as the process-level benchmarks): the Redis time per call is
  // then this benchmark's alone, not the other users' of a shared Redis.
  return withRedis(async (server) => {
    const ours = server.prefix('enq-ours');
    const raw = server.prefix('enq-raw');
    const admin = server.connect();
    const producer = createProducer({ redisUrl: server.url, prefix: ours });
    const rawConnection = server.connect();
    const queues = TYPES.map((type) => new Queue(`{${type}}`, { connection: rawConnection, prefix: raw }));
    let sequence = 0;

    const runOurs = async (n: number) => {
      const samples: number[] = [];
      for (let i = 0; i < n; i += 1) {
        const now = Date.now();
        const input = outcome(sequence++, now);
        const started = performance.now();
        await producer.conversationEnded(input);
        samples.push(performance.now() - started);
      }
      return samples;
    };
    const runRaw = async (n: number) => {
      const samples: number[] = [];
      for (let i = 0; i < n; i += 1) {
        const now = Date.now();
        const input = outcome(sequence++, now);
        const started = performance.now();
        await Promise.all(
          queues.map((queue, index) =>
            queue.add(
              TYPES[index]!,
              { conversationId: input.conversationId, payload: input },
              {
                jobId: `${input.conversationId}%3A${TYPES[index]}`,
                timestamp: now,
                delay: index === 2 || index === 4 ? HOUR : 0,
                attempts: 3,
                backoff: { type: 'aftercall' },
                removeOnComplete: { age: 86_400 },
                removeOnFail: false,
              },
            ),
          ),
        );
        samples.push(performance.now() - started);
      }
      return samples;
    };

    const sides = { ours: runOurs, raw: runRaw };
    await runOurs(warmup);
    await runRaw(warmup);
    const perRound: { ours: Summary; raw: Summary }[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const samples: Partial<Record<'ours' | 'raw', number[]>> = {};
      for (const side of alternating(round, ['ours', 'raw'] as const)) samples[side] = await sides[side](calls);
      perRound.push({ ours: summarize(samples.ours!), raw: summarize(samples.raw!) });
    }
    // Where a call's time goes: Redis' time executing its commands (INFO commandstats, the scripts' inner commands
    // included) and this process' CPU, per call. The sides take turns in chunks, each chunk's counts read as the
    // difference of INFO before and after it: a change in what else the machine does weighs on both sides alike.
    const commandstats = async () => {
      const stats = await admin.info('commandstats');
      const counts = new Map<string, { calls: number; us: number }>();
      for (const [, command, count, usec] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
        if (command === 'info' || command!.startsWith('config')) continue;
        counts.set(command!, { calls: Number(count), us: Number(usec) });
      }
      return counts;
    };
    const COST_CHUNKS = 10;
    const perChunk = Math.ceil(calls / COST_CHUNKS);
    const spent = {
      ours: { cpuUs: 0, byCommand: new Map<string, { calls: number; us: number }>() },
      raw: { cpuUs: 0, byCommand: new Map<string, { calls: number; us: number }>() },
    };
    for (let chunk = 0; chunk < COST_CHUNKS; chunk += 1) {
      for (const side of alternating(chunk, ['ours', 'raw'] as const)) {
        const before = await commandstats();
        const cpu = process.cpuUsage();
        await sides[side](perChunk);
        const used = process.cpuUsage(cpu);
        const after = await commandstats();
        spent[side].cpuUs += used.user + used.system;
        for (const [command, { calls: n, us }] of after) {
          const was = before.get(command) ?? { calls: 0, us: 0 };
          const total = spent[side].byCommand.get(command) ?? { calls: 0, us: 0 };
          spent[side].byCommand.set(command, { calls: total.calls + n - was.calls, us: total.us + us - was.us });
        }
      }
    }
    const costOf = (side: 'ours' | 'raw'): Cost => {
      const measured = perChunk * COST_CHUNKS;
      let redisUs = 0;
      const byCommand: Record<string, { calls: number; us: number }> = {};
      for (const [command, { calls: n, us }] of spent[side].byCommand) {
        if (n === 0) continue;
        byCommand[command] = { calls: n / measured, us: us / measured };
        if (SCRIPT_COMMANDS.has(command)) redisUs += us;
      }
      if (redisUs === 0) throw new Error('enqueue-latency: no script call seen in INFO commandstats');
      return {
        redisUsPerCall: redisUs / measured,
        clientCpuUsPerCall: spent[side].cpuUs / measured,
        byCommand,
      };
    };
    const cost = { ours: costOf('ours'), raw: costOf('raw') };

    await producer.close();
    await Promise.all(queues.map((queue) => queue.close()));
    rawConnection.disconnect();

    const pick = (side: 'ours' | 'raw', key: 'p50' | 'p99') => acrossRounds(perRound.map((round) => round[side][key]));
    const ratioP99 = pick('ours', 'p99').median / pick('raw', 'p99').median;
    return {
      callsPerRound: calls,
      ours: { p50: pick('ours', 'p50'), p99: pick('ours', 'p99') },
      raw: { p50: pick('raw', 'p50'), p99: pick('raw', 'p99') },
      cost,
      ratioP50: pick('ours', 'p50').median / pick('raw', 'p50').median,
      ratioP99,
      ratioP99PerRound: acrossRounds(perRound.map((round) => round.ours.p99 / round.raw.p99)),
      // Both parts: p99 within 1.2x five raw adds, and Redis time per call within 1.3x.
      goal: {
        metric: 'p99 ratio (and Redis time per call <= 1.3x)',
        limit: 1.2,
        met: ratioP99 <= 1.2 && (!cost || cost.ours.redisUsPerCall / cost.raw.redisUsPerCall <= 1.3),
      },
    };
  });
}

/** Per outcome call, by command: what each side's Redis time is made of. */
function commandLines(e: Entry<EnqueueLatency>): string[] {
  const ours = e.cost?.ours.byCommand;
  const raw = e.cost?.raw.byCommand;
  if (!ours || !raw) return [];
  const names = [...new Set([...Object.keys(ours), ...Object.keys(raw)])].sort(
    (a, b) => (ours[b]?.us ?? 0) + (raw[b]?.us ?? 0) - (ours[a]?.us ?? 0) - (raw[a]?.us ?? 0),
  );
  const cell = (c: { calls: number; us: number } | undefined) => (c ? `${fmt(c.calls, 1)} / ${fmt(c.us, 0)}` : '-');
  return [
    "Per outcome call, by command (`INFO commandstats`: calls / µs; a script's µs include those of the commands it",
    'runs, which are listed by name too):',
    '',
    '| command | aftercall | raw BullMQ |',
    '|---|---|---|',
    ...names.map((name) => `| ${name} | ${cell(ours[name])} | ${cell(raw[name])} |`),
    '',
  ];
}

/** µs per call of the commands scripts run (everything but the scripts themselves), by side. */
function innerUs(cost: Cost | undefined, only?: string): number {
  if (!cost?.byCommand) return Number.NaN;
  return Object.entries(cost.byCommand)
    .filter(([name]) => !SCRIPT_COMMANDS.has(name) && (only === undefined || name === only))
    .reduce((sum, [, c]) => sum + c.us, 0);
}

/** The claims that explain the verdict, each tested against this run's figures (reasons.ts). */
export function enqueueReasons(e: Entry<EnqueueLatency>): Claim[] {
  const redis = e.cost ? e.cost.ours.redisUsPerCall / e.cost.raw.redisUsPerCall : Number.NaN;
  const client = e.cost ? e.cost.ours.clientCpuUsPerCall / e.cost.raw.clientCpuUsPerCall : Number.NaN;
  const spread = e.ratioP99PerRound;
  const scripts = e.cost?.ours.byCommand?.evalsha?.calls ?? Number.NaN;
  const extra = e.cost ? e.cost.ours.redisUsPerCall - e.cost.raw.redisUsPerCall : Number.NaN;
  const extraCommands = innerUs(e.cost?.ours) - innerUs(e.cost?.raw);
  const extraZadd = innerUs(e.cost?.ours, 'zadd') - innerUs(e.cost?.raw, 'zadd');
  const budget = e.cost ? 0.3 * e.cost.raw.redisUsPerCall : Number.NaN;
  // A call's latency against its client CPU plus Redis' time: near the sum when the two run one
  // after the other, well under it when Redis runs earlier commands while the client builds later ones.
  const oursP50Us = e.ours.p50.median * 1_000;
  const rawP50Us = e.raw.p50.median * 1_000;
  const oursSum = e.cost ? e.cost.ours.clientCpuUsPerCall + e.cost.ours.redisUsPerCall : Number.NaN;
  const rawSum = e.cost ? e.cost.raw.clientCpuUsPerCall + e.cost.raw.redisUsPerCall : Number.NaN;
  const loaded = e.loadAverage ? Math.max(...e.loadAverage) > cpus().length : true;
  return supported([
    claim(
      `Redis spends ${fmt(redis)} times five bare adds' time per call. One script call carries the outcome's five tasks (${fmt(scripts, 1)} calls per outcome; on a Redis Cluster, one per type) and runs for each BullMQ's own add (whose job counter counts the tasks created) and, in the same atomic step, the dedupe check (the add's own is turned off), the expiry index, the conversation's countdown and, for the reminder, the booking's claim.`,
      redis > 1.05 && scripts < 1.5,
      `Redis time ratio ${fmt(redis)}, ${fmt(scripts, 1)} script calls per outcome`,
    ),
    claim(
      `Of the ${fmt(extra, 0)} µs a call costs Redis beyond five bare adds, the commands run inside the scripts take ${fmt(extraCommands, 0)} µs more than raw's (the expiry index's ZADD into a set of every pending task ${fmt(extraZadd, 0)} µs), and the Lua around them the rest.`,
      extra > 0 && extraCommands > 0 && extraCommands < extra && extraZadd > 0,
      `extra ${fmt(extra, 0)} µs, commands ${fmt(extraCommands, 0)} µs, zadd ${fmt(extraZadd, 0)} µs`,
    ),
    claim(
      `Those commands alone are more than the 30 % of raw's time (${fmt(budget, 0)} µs) the goal leaves: no way of running them meets it without dropping a guarantee.`,
      extraCommands > budget,
      `commands ${fmt(extraCommands, 0)} µs, 30 % of raw ${fmt(budget, 0)} µs`,
    ),
    claim(
      `Redis time per call is within ${fmt(redis)} times a bare add's.`,
      redis <= 1.3,
      `Redis time ratio ${fmt(redis)}`,
    ),
    claim(
      `The client spends ${fmt(client)} times raw BullMQ's CPU per call: the outcome's validation and plan.`,
      client > 1.05,
      `client CPU ratio ${fmt(client)}`,
    ),
    claim(
      `The latency is the client's work and Redis' one after the other: a call's median is ${fmt(oursP50Us, 0)} µs against ${fmt(oursSum, 0)} µs of client CPU and Redis time, because the outcome's tasks go in one script call that Redis starts only once the client has built all of them. Raw BullMQ's five adds overlap the two: Redis runs the first while the client builds the next (median ${fmt(rawP50Us, 0)} µs against ${fmt(rawSum, 0)} µs). One script per task overlapped too, but paid a script call's own cost (its dispatch, its functions' set-up, its options' decode) once per task.`,
      oursP50Us >= 0.8 * oursSum && rawP50Us <= 0.75 * rawSum,
      `p50 ${fmt(oursP50Us, 0)} µs vs sum ${fmt(oursSum, 0)} µs; raw p50 ${fmt(rawP50Us, 0)} µs vs sum ${fmt(rawSum, 0)} µs`,
    ),
    claim(
      `The p99 ratio moved from round to round (${fmt(spread?.min)}..${fmt(spread?.max)} in this run), with whatever else the machine's two cores were doing; the absolute p99 (${fmt(e.ours.p99.median, 2)} ms) stays far under the voice agent's 200 ms budget.`,
      loaded && spread !== undefined && Number.isFinite(spread.min) && e.ours.p99.median < 200,
      `p99 ${fmt(e.ours.p99.median, 2)} ms, machine loaded: ${loaded}`,
    ),
    claim(
      `The absolute p99 (${fmt(e.ours.p99.median, 2)} ms) stays far under the voice agent's 200 ms budget.`,
      !loaded && e.ours.p99.median < 200,
      `p99 ${fmt(e.ours.p99.median, 2)} ms`,
    ),
  ]);
}

export const enqueueLatency: Benchmark<EnqueueLatency> = {
  name: 'enqueue-latency',
  figures: [
    'ours.p50.median',
    'ours.p99.median',
    'raw.p50.median',
    'raw.p99.median',
    'ratioP99',
    'cost.ours.redisUsPerCall',
    'cost.raw.clientCpuUsPerCall',
  ],
  run,
  report: (e) => [
    '## Enqueue latency',
    '',
    ...measuredAt(e),
    `\`conversationEnded\` of a five-task outcome, sequential calls (${e.callsPerRound} per round), against five concurrent raw`,
    '`Queue.add` calls with the same job options.',
    '',
    '| | aftercall (ms) | raw BullMQ (ms) | ratio | goal |',
    '|---|---|---|---|---|',
    `| p50 | ${range(e.ours.p50, 3)} | ${range(e.raw.p50, 3)} | ${fmt(e.ratioP50)} | |`,
    `| p99 | ${range(e.ours.p99, 3)} | ${range(e.raw.p99, 3)} | ${fmt(e.ratioP99)} | ${verdict(e.goal, '≤ 1.2')} |`,
    ...(e.cost
      ? [
          `| Redis time per call (µs) | ${fmt(e.cost.ours.redisUsPerCall, 0)} | ${fmt(e.cost.raw.redisUsPerCall, 0)} | ${fmt(e.cost.ours.redisUsPerCall / e.cost.raw.redisUsPerCall)} | ≤ 1.3: ${e.goal.judged === false ? 'not judged' : e.cost.ours.redisUsPerCall / e.cost.raw.redisUsPerCall <= 1.3 ? '**met**' : '**missed**'} |`,
          `| client CPU per call (µs) | ${fmt(e.cost.ours.clientCpuUsPerCall, 0)} | ${fmt(e.cost.raw.clientCpuUsPerCall, 0)} | ${fmt(e.cost.ours.clientCpuUsPerCall / e.cost.raw.clientCpuUsPerCall)} | |`,
        ]
      : []),
    '',
    "Redis time is what Redis spent executing the scripts the calls sent (`INFO commandstats`; a script's time",
    "includes the commands it runs, counted once), client CPU this process' CPU (`process.cpuUsage`), per call,",
    'measured in one more pass in which the sides take turns in chunks, on a private redis-server without',
    'persistence.',
    '',
    ...commandLines(e),
    ...(e.goal.judged === false || e.goal.met === null
      ? []
      : reasonParagraph(e.goal.met ? 'Why met.' : 'Why missed.', enqueueReasons(e))),
  ],
};
