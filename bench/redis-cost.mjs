// Redis cost per task: the Redis commands and Lua script calls of a task's whole life,
// enqueue (aftercall: the producer's conversationEnded of a no_action outcome, one
// update_crm task; raw: Queue.add with the same data and options) and processing by a
// worker process (concurrency 50, no-op delivery) to completion.
//
// On a private redis-server, so nothing else is counted. CONFIG RESETSTAT before, INFO
// commandstats after: every command, those run inside scripts included ("all commands").
// commandstats cannot tell a client's own commands from those its scripts ran, so MONITOR
// watches the same window: a line from a client is a round trip ("top-level calls", EVALSHA
// included), a line from `lua` ran inside the script before it. The harness's own commands
// (pause, resume, INFO, CONFIG, MONITOR) are recognised by their connection and left out.
//
// Two scenarios, both counted per completed task:
//   backlog  the queue is paused while the tasks are enqueued, then resumed: workers
//            drain a backlog (a finished job's script hands the worker the next one)
//   trickle  one task at a time, the next enqueued once the previous one finished: an
//            idle worker is woken for every task (the usual state of a fleet)
// A warm-up before either loads every script on every connection.
import { connect, describeRedis, log, sleep, startSide, withRedis } from './harness.mjs';
import { CONCURRENCY } from './throughput.mjs';

const SCRIPT_COMMANDS = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']);
const ADMIN_COMMANDS = new Set(['info', 'monitor', 'config|resetstat', 'config|get', 'config|set']);

function parseCommandstats(text) {
  const calls = {};
  for (const match of text.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) calls[match[1]] = Number(match[2]);
  return calls;
}

/** Counts MONITOR lines by origin: a client's own commands, and those its scripts ran. */
async function startMonitor(url, harnessPorts) {
  const base = connect(url);
  const monitor = await base.monitor();
  const counts = { topLevel: {}, inScripts: 0, harnessTopLevel: {}, harnessInScripts: 0 };
  let lastScriptFromHarness = false;
  monitor.on('monitor', (_time, args, source) => {
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
function sumWhere(counts, keep = () => true) {
  let sum = 0;
  for (const [name, count] of Object.entries(counts)) if (keep(name)) sum += count;
  return sum;
}

async function measure({ url, admin, harnessPorts, tasks, run }) {
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
  const perTask = (value) => value / tasks;
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
    // MONITOR's count of everything (a client's commands and its scripts') against commandstats'
    monitorAllCommands: perTask(topLevelCalls + inScripts),
  };
}

export async function redisCost({ quick }) {
  const backlogTasks = quick ? 200 : 2_000;
  const trickleTasks = quick ? 30 : 300;
  return withRedis(async (redis) => {
    const sides = {};
    const admin = redis.connect();
    await admin.ping();
    for (const side of ['ours', 'raw']) {
      const prefix = redis.prefix(`cost-${side}`);
      // Raw: Queue.add, one call per task (not addBulk); the warm-up round needs no CPU figures.
      const { worker, enqueuer, control, run } = redis.stopLater(
        await startSide({
          side,
          url: redis.url,
          prefix,
          concurrency: CONCURRENCY,
          port: 'noop',
          log: 'null',
          bulk: false,
          redisCpu: false,
        }),
      );
      await control.client.ping();
      const harnessPorts = new Set([admin.stream.localPort, control.client.stream.localPort]);
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
    const ratios = {};
    for (const scenario of ['backlog', 'trickle']) {
      ratios[scenario] = {
        topLevel: sides.ours[scenario].topLevel / sides.raw[scenario].topLevel,
        scriptCalls: sides.ours[scenario].scriptCalls / sides.raw[scenario].scriptCalls,
        allCommands: sides.ours[scenario].allCommands / sides.raw[scenario].allCommands,
      };
    }
    const worst = Math.max(...Object.values(ratios).flatMap((r) => [r.topLevel, r.allCommands]));
    return {
      isolated: redis.isolated,
      redis: describeRedis(redis),
      concurrency: CONCURRENCY,
      ours: sides.ours,
      raw: sides.raw,
      ratios,
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
