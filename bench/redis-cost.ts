/**
 * Redis cost per task: the Redis commands and Lua script calls of a task's whole life,
 * enqueue (aftercall: the producer's conversationEnded of a no_action outcome, one
 * update_crm task; raw: Queue.add with the same data and options) and processing by a
 * worker process (concurrency 50, no-op delivery) to completion.
 *
 * On a private redis-server, so nothing else is counted. CONFIG RESETSTAT before, INFO
 * commandstats after: every command, those run inside scripts included ("all commands").
 * commandstats cannot tell a client's own commands from those its scripts ran, so MONITOR
 * watches the same window: a line from a client is a round trip ("top-level calls", EVALSHA
 * included), a line from `lua` ran inside the script before it. The harness's own commands
 * (pause, resume, INFO, CONFIG, MONITOR) are recognised by their connection and left out.
 *
 * Two scenarios, both counted per completed task:
 *   backlog  the queue is paused while the tasks are enqueued, then resumed: workers
 *            drain a backlog (a finished job's script hands the worker the next one)
 *   trickle  one task at a time, the next enqueued once the previous one finished: an
 *            idle worker is woken for every task (the usual state of a fleet)
 * A warm-up before either loads every script on every connection.
 *
 * A third side, "with the destination policy", is aftercall delivering for real through
 * the webhook router to a local receiver, with a rate limit configured far above the load
 * (CRM_WEBHOOK_RATE_LIMIT=1000000/s): every delivery asks its destination first (one script
 * call per process in flight, for the jobs that started while the previous one was out), and
 * results are recorded in batches. It shows what the policy costs in Redis when
 * nothing has to wait.
 */
import type { Redis } from 'ioredis';
import { connect, describeRedis, log, sleep, startSide, withRedis } from './harness.js';
import type { Benchmark, Entry, Goal } from './lib.js';
import { fmt, measuredAt, num, verdict } from './report.js';
import { startArrivalCounter } from './destination-rate.js';
import { CONCURRENCY } from './throughput.js';

const SCRIPT_COMMANDS = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']);
const ADMIN_COMMANDS = new Set(['info', 'monitor', 'config|resetstat', 'config|get', 'config|set']);

type Counts = Record<string, number>;

function parseCommandstats(text: string): Counts {
  const calls: Counts = {};
  for (const match of text.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return calls;
}

/** Counts MONITOR lines by origin: a client's own commands, and those its scripts ran. */
async function startMonitor(url: string, harnessPorts: Set<number>) {
  const base = connect(url);
  const monitor = await base.monitor();
  const counts = { topLevel: {} as Counts, inScripts: 0, harnessTopLevel: {} as Counts, harnessInScripts: 0 };
  let lastScriptFromHarness = false;
  monitor.on('monitor', (_time: string, args: unknown[], source: string) => {
    const command = String(args[0] ?? '').toLowerCase();
    if (source === 'lua') {
      if (lastScriptFromHarness) counts.harnessInScripts += 1;
      else counts.inScripts += 1;
      return;
    }
    const port = Number(source.split(':').at(-1));
    const fromHarness = harnessPorts.has(port);
    if (SCRIPT_COMMANDS.has(command)) lastScriptFromHarness = fromHarness;
    const bucket = fromHarness ? counts.harnessTopLevel : counts.topLevel;
    bucket[command] = (bucket[command] ?? 0) + 1;
  });
  return {
    counts,
    async stop() {
      monitor.disconnect();
      base.disconnect();
    },
  };
}

/** The sum of the counts (command name: count) whose name passes `keep`; of all without it. */
function sumWhere(counts: Counts, keep: (name: string) => boolean = () => true): number {
  let sum = 0;
  for (const [name, count] of Object.entries(counts)) if (keep(name)) sum += count;
  return sum;
}

interface Scenario {
  tasks: number;
  topLevel: number;
  scriptCalls: number;
  otherCommands: number;
  allCommands: number;
  insideScripts: number;
  topLevelByCommand: Counts;
  /** MONITOR's count of everything (a client's commands and its scripts') against commandstats'. */
  monitorAllCommands: number;
}

type ScenarioName = 'backlog' | 'trickle';
type Ratios = Record<'topLevel' | 'scriptCalls' | 'allCommands', number>;

export interface RedisCost {
  isolated: boolean;
  redis: string;
  concurrency: number;
  ours: Record<ScenarioName, Scenario>;
  raw: Record<ScenarioName, Scenario>;
  ratios: Record<ScenarioName, Ratios>;
  /** aftercall with the destination policy on (a real webhook delivery, a rate limit configured); absent in older results. */
  policy?: Record<ScenarioName, Scenario>;
  policyRatios?: Record<ScenarioName, Ratios>;
  worstRatio: number;
  goal: Goal;
}

async function measure({
  url,
  admin,
  harnessPorts,
  tasks,
  run,
}: {
  url: string;
  admin: Redis;
  harnessPorts: Set<number>;
  tasks: number;
  run: () => Promise<void>;
}): Promise<Scenario> {
  const monitor = await startMonitor(url, harnessPorts);
  await sleep(50);
  await admin.config('RESETSTAT');
  await run();
  // The last jobs' finishing calls follow the processor's return by a few milliseconds.
  await sleep(300);
  const stats = parseCommandstats(await admin.info('commandstats'));
  await sleep(50);
  await monitor.stop();
  const { topLevel, inScripts, harnessTopLevel, harnessInScripts } = monitor.counts;
  const harnessAll = sumWhere(harnessTopLevel, (name) => !ADMIN_COMMANDS.has(name)) + harnessInScripts;
  const allCommands = sumWhere(stats, (name) => !ADMIN_COMMANDS.has(name) && !name.startsWith('config|')) - harnessAll;
  const scriptCalls = sumWhere(topLevel, (name) => SCRIPT_COMMANDS.has(name));
  const topLevelCalls = sumWhere(topLevel);
  const perTask = (value: number) => value / tasks;
  return {
    tasks,
    topLevel: perTask(topLevelCalls),
    scriptCalls: perTask(scriptCalls),
    otherCommands: perTask(topLevelCalls - scriptCalls),
    allCommands: perTask(allCommands),
    insideScripts: perTask(allCommands - topLevelCalls),
    topLevelByCommand: Object.fromEntries(
      Object.entries(topLevel)
        .sort((a, b) => b[1] - a[1])
        .map(([name, count]) => [name, perTask(count)]),
    ),
    monitorAllCommands: perTask(topLevelCalls + inScripts),
  };
}

async function run({ quick }: { quick: boolean }): Promise<RedisCost> {
  const backlogTasks = quick ? 200 : 2_000;
  const trickleTasks = quick ? 30 : 300;
  const receiver = await startArrivalCounter();
  return withRedis(async (redis) => {
    const sides = {} as Record<'ours' | 'raw' | 'policy', Record<ScenarioName, Scenario>>;
    const admin = redis.connect();
    await admin.ping();
    redis.stopLater({ close: () => receiver.close() });
    for (const side of ['ours', 'raw', 'policy'] as const) {
      const prefix = redis.prefix(`cost-${side}`);
      // Raw: Queue.add, one call per task (not addBulk); the warm-up round needs no CPU figures.
      const { worker, enqueuer, control, run } = redis.stopLater(
        await startSide({
          side: side === 'policy' ? 'ours' : side,
          url: redis.url,
          prefix,
          concurrency: CONCURRENCY,
          log: 'null',
          bulk: false,
          redisCpu: false,
          ...(side === 'policy'
            ? { port: 'webhook', webhookUrl: receiver.url, env: { CRM_WEBHOOK_RATE_LIMIT: '1000000/s' } }
            : { port: 'noop' }),
        }),
      );
      await control.client.ping();
      const harnessPorts = new Set([admin.stream.localPort!, control.client.stream.localPort!]);
      // Warm-up: scripts loaded on the server, every connection made.
      await run(100);
      await sleep(300);

      const backlog = await measure({
        url: redis.url,
        admin,
        harnessPorts,
        tasks: backlogTasks,
        run: async () => {
          await control.pause();
          await worker.request('mark');
          await enqueuer.enqueue(backlogTasks);
          await control.resume();
          await worker.request('expect', { n: backlogTasks });
        },
      });
      const trickle = await measure({
        url: redis.url,
        admin,
        harnessPorts,
        tasks: trickleTasks,
        run: async () => {
          for (let i = 0; i < trickleTasks; i += 1) {
            await worker.request('mark');
            await enqueuer.enqueue(1);
            await worker.request('expect', { n: 1 });
          }
        },
      });
      sides[side] = { backlog, trickle };
      log(
        `redis-cost ${side}: backlog ${backlog.topLevel.toFixed(2)} top-level / ${backlog.allCommands.toFixed(1)} all; trickle ${trickle.topLevel.toFixed(2)} / ${trickle.allCommands.toFixed(1)} per task`,
      );
    }
    const ratiosOf = (side: 'ours' | 'policy') => {
      const ratios = {} as Record<ScenarioName, Ratios>;
      for (const scenario of ['backlog', 'trickle'] as const) {
        ratios[scenario] = {
          topLevel: sides[side][scenario].topLevel / sides.raw[scenario].topLevel,
          scriptCalls: sides[side][scenario].scriptCalls / sides.raw[scenario].scriptCalls,
          allCommands: sides[side][scenario].allCommands / sides.raw[scenario].allCommands,
        };
      }
      return ratios;
    };
    const ratios = ratiosOf('ours');
    const policyRatios = ratiosOf('policy');
    const worst = Math.max(
      ...[...Object.values(ratios), ...Object.values(policyRatios)].flatMap((r) => [r.topLevel, r.allCommands]),
    );
    return {
      isolated: redis.isolated,
      redis: describeRedis(redis),
      concurrency: CONCURRENCY,
      ours: sides.ours,
      raw: sides.raw,
      ratios,
      policy: sides.policy,
      policyRatios,
      worstRatio: worst,
      goal: {
        metric: 'ours / raw commands per task (top-level and all, both scenarios)',
        limit: 1.5,
        judged: !quick,
        met: quick ? null : worst <= 1.5,
      },
    };
  });
}

/** Rows of aftercall with the destination policy on, against the same raw BullMQ figures. */
function policyRows(c: Entry<RedisCost> & Required<Pick<RedisCost, 'policy' | 'policyRatios'>>): string[] {
  const row = (scenario: ScenarioName, label: string, key: keyof Ratios, digits = 2) =>
    `| ${scenario}, destination policy on | ${label} | ${fmt(c.policy[scenario][key], digits)} | ${fmt(c.raw[scenario][key], digits)} | ${fmt(c.policyRatios[scenario][key])} |`;
  return [
    row('backlog', 'top-level calls', 'topLevel'),
    row('backlog', 'all commands, incl. inside scripts', 'allCommands', 1),
    row('trickle', 'top-level calls', 'topLevel'),
    row('trickle', 'all commands, incl. inside scripts', 'allCommands', 1),
  ];
}

function report(c: Entry<RedisCost>): string[] {
  const row = (scenario: ScenarioName, label: string, key: keyof Ratios, digits = 2) =>
    `| ${scenario} | ${label} | ${fmt(c.ours[scenario][key], digits)} | ${fmt(c.raw[scenario][key], digits)} | ${c.ratios[scenario][key] === undefined ? fmt(c.ours[scenario][key] / c.raw[scenario][key]) : fmt(c.ratios[scenario][key])} |`;
  const byCommand = (side: 'ours' | 'raw', scenario: ScenarioName) =>
    Object.entries(c[side][scenario].topLevelByCommand)
      .map(([name, count]) => `${name} ${fmt(count)}`)
      .join(', ');
  return [
    '## Redis cost per task',
    '',
    ...measuredAt(c),
    'Commands per completed task over its whole life: enqueue (aftercall: `conversationEnded` of a `no_action` outcome;',
    'raw: `Queue.add` with the same data and options) and processing to completion by a worker process (concurrency',
    `${c.concurrency}, no-op delivery). On ${c.redis}: \`CONFIG RESETSTAT\` before, \`INFO commandstats\` after`,
    'gives every command, including those run inside Lua scripts ("all commands"); MONITOR over the same window separates',
    'the clients\' own round trips ("top-level calls", EVALSHA included) from the commands their scripts ran. The harness\'s',
    'own commands (pause, resume, INFO, CONFIG) are left out. **backlog**: the tasks are enqueued while the queue is paused,',
    `then drained (${num(c.ours.backlog.tasks)} tasks); **trickle**: one task at a time, each enqueued after the previous one finished, so an`,
    `idle worker is woken for every task (${num(c.ours.trickle.tasks)} tasks).`,
    '',
    '| scenario | per task | aftercall | raw BullMQ | ratio |',
    '|---|---|---|---|---|',
    row('backlog', 'top-level calls', 'topLevel'),
    row('backlog', 'of which script calls', 'scriptCalls'),
    row('backlog', 'all commands, incl. inside scripts', 'allCommands', 1),
    row('trickle', 'top-level calls', 'topLevel'),
    row('trickle', 'of which script calls', 'scriptCalls'),
    row('trickle', 'all commands, incl. inside scripts', 'allCommands', 1),
    ...(c.policy && c.policyRatios
      ? policyRows(c as Entry<RedisCost> & Required<Pick<RedisCost, 'policy' | 'policyRatios'>>)
      : []),
    '',
    `Top-level calls by command: backlog aftercall ${byCommand('ours', 'backlog')}; raw ${byCommand('raw', 'backlog')}. Trickle aftercall`,
    `${byCommand('ours', 'trickle')}; raw ${byCommand('raw', 'trickle')}. Largest ratio ${fmt(c.worstRatio)} (${verdict(c.goal, 'goal ≤ 1.5')}).`,
    '',
    "aftercall's enqueue is one script, like `Queue.add`, that also writes the expiry index and the conversation's counts (the extra",
    'commands inside scripts); processing runs BullMQ\'s own scripts. "Destination policy on" delivers for real through the',
    'webhook router with a rate limit configured far above the load (`CRM_WEBHOOK_RATE_LIMIT=1000000/s`): each delivery asks',
    'its destination first (one script call in flight per process: the jobs that start while it is out are asked for together in',
    'the next), and successes are recorded in batches of up to 1 s per process (failures at once). In the',
    'trickle scenario the blocking waits for the',
    'next job (BZPOPMIN on the marker) and the fetch of an empty queue vary with timing on either side.',
    '',
  ];
}

export const redisCost: Benchmark<RedisCost> = {
  name: 'redis-cost',
  figures: [
    'ours.backlog.topLevel',
    'ours.backlog.scriptCalls',
    'ours.backlog.allCommands',
    'ours.trickle.topLevel',
    'ours.trickle.allCommands',
    'raw.backlog.topLevel',
    'raw.backlog.allCommands',
    'raw.trickle.topLevel',
    'ratios.backlog.allCommands',
    'policy.backlog.topLevel',
    'policy.trickle.topLevel',
    'policyRatios.backlog.allCommands',
    'worstRatio',
  ],
  run,
  report,
};
