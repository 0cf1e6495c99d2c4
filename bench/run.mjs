// npm run bench [-- --quick] [-- --only=name,name]
// Runs the benchmarks, each comparison against raw BullMQ measured in the same run, and
// writes bench/results/latest.json and docs/PERFORMANCE.md (a --quick run writes
// bench/results/quick.json only, and judges no goal: its sizes are too small to time).
// The two original benchmarks use the Redis at REDIS_URL; the process-level ones start a
// private redis-server each (see harness.mjs), falling back to REDIS_URL without one.
//
// A full run with --only replaces those benchmarks' entries in latest.json and keeps the
// others (when they were measured on the same machine), so the report stays whole; each
// section says when it was measured.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { enqueueLatency } from './enqueue-latency.mjs';
import { horizontalScaling } from './horizontal-scaling.mjs';
import { ioConcurrency } from './io-concurrency.mjs';
import { fmt, machine } from './lib.mjs';
import { memory } from './memory.mjs';
import { redisCost } from './redis-cost.mjs';
import { sweeperScaling } from './sweeper-scaling.mjs';
import { throughput } from './throughput.mjs';

const quick = process.argv.includes('--quick');
const onlyArg = process.argv.find((arg) => arg.startsWith('--only='));
const only = onlyArg ? onlyArg.slice('--only='.length).split(',').filter(Boolean) : undefined;

const BENCHMARKS = {
  'enqueue-latency': enqueueLatency,
  'sweeper-scaling': sweeperScaling,
  throughput,
  'io-concurrency': ioConcurrency,
  'horizontal-scaling': horizontalScaling,
  'redis-cost': redisCost,
  memory,
};

const unknown = (only ?? []).filter((name) => !(name in BENCHMARKS));
if (unknown.length) {
  process.stderr.write(
    `bench: unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}\n`,
  );
  process.exit(2);
}

const resultsFile = new URL(`./results/${quick ? 'quick' : 'latest'}.json`, import.meta.url);
const results = { quick, machine: await machine(), benchmarks: {} };
const failures = [];
for (const [name, run] of Object.entries(BENCHMARKS)) {
  if (only && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name}${quick ? ' (quick)' : ''}\n`);
  const started = performance.now();
  try {
    const result = await run({ quick });
    // A quick run's sizes are too small for its timings to mean anything: no verdicts.
    if (quick && result.goal) result.goal = { ...result.goal, judged: false, met: null };
    else if (result.goal && result.goal.judged === undefined) result.goal = { ...result.goal, judged: true };
    results.benchmarks[name] = {
      ...result,
      ranAt: new Date().toISOString(),
      seconds: (performance.now() - started) / 1000,
    };
  } catch (error) {
    failures.push(name);
    process.stderr.write(`bench: ${name} failed: ${error.stack ?? error}\n`);
    results.benchmarks[name] = { error: String(error.message ?? error), ranAt: new Date().toISOString() };
  }
}

// A partial full run keeps the other benchmarks' last results from the same machine.
const sameMachine = (a, b) => ['cores', 'cpu', 'memoryGiB', 'node', 'redis'].every((key) => a?.[key] === b?.[key]);
if (!quick && only && existsSync(resultsFile)) {
  try {
    const previous = JSON.parse(readFileSync(resultsFile, 'utf8'));
    if (sameMachine(previous.machine, results.machine)) {
      for (const [name, entry] of Object.entries(previous.benchmarks ?? {})) {
        if (!(name in results.benchmarks) && name in BENCHMARKS && !entry.error) {
          results.benchmarks[name] = { ranAt: previous.machine.date, ...entry, fromEarlierRun: true };
        }
      }
      results.benchmarks = Object.fromEntries(
        Object.keys(BENCHMARKS)
          .filter((name) => name in results.benchmarks)
          .map((name) => [name, results.benchmarks[name]]),
      );
    }
  } catch {
    // an unreadable previous file is replaced
  }
}

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);

// ---------------------------------------------------------------------------------------
// The report

const num = (value) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a');
const pct = (value, digits = 0) => (Number.isFinite(value) ? `${(value * 100).toFixed(digits)} %` : 'n/a');
const range = (s, digits = 0, format = (v) => (digits === 0 ? num(v) : fmt(v, digits))) =>
  s ? `${format(s.median)} (${format(s.min)}..${format(s.max)})` : 'n/a';
const us = (value) => `${fmt(value, 1)} µs`;

function verdict(goal, text) {
  if (!goal) return '';
  // The original benchmarks' goals carry no `judged`: a full run's verdict stands.
  const judged = goal.judged ?? (goal.met !== null && goal.met !== undefined);
  if (!judged || goal.met === null || goal.met === undefined) return `${text}: not judged (quick run)`;
  return `${text}: **${goal.met ? 'met' : 'missed'}**`;
}

/** Sections kept from an earlier run (a run with --only) say when they were measured. */
function measuredAt(entry) {
  return entry.fromEarlierRun && entry.ranAt
    ? [`_Measured in an earlier run, ${entry.ranAt.slice(0, 16).replace('T', ' ')} UTC._`, '']
    : [];
}

const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`;

function enqueueLatencySection(e) {
  return [
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
          `| Redis time per call (µs) | ${fmt(e.cost.ours.redisUsPerCall, 0)} | ${fmt(e.cost.raw.redisUsPerCall, 0)} | ${fmt(e.cost.ours.redisUsPerCall / e.cost.raw.redisUsPerCall)} | |`,
          `| client CPU per call (µs) | ${fmt(e.cost.ours.clientCpuUsPerCall, 0)} | ${fmt(e.cost.raw.clientCpuUsPerCall, 0)} | ${fmt(e.cost.ours.clientCpuUsPerCall / e.cost.raw.clientCpuUsPerCall)} | |`,
        ]
      : []),
    '',
    "Redis time is what Redis spent executing the calls' commands (`INFO commandstats`, the scripts' inner commands",
    "included), client CPU this process' CPU (`process.cpuUsage`), per call, measured in one more pass per side.",
    '',
    ...(e.goal.met === false
      ? [
          "**Why missed.** Each task is one script that runs BullMQ's own add and, in the same atomic step, checks whether",
          'the job exists already, indexes it by expiry, counts it for the creation rate and, for a reminder, claims its',
          "booking: more work in Redis per task than a bare add (the Redis time above), and the outcome's validation and",
          'plan in the client. Both add to every call, and Redis runs the five scripts one after another. The absolute p99',
          `stays a few milliseconds against the voice agent's 200 ms budget; the p99 ratio moves from round to round`,
          `(${fmt(e.ratioP99PerRound?.min)}..${fmt(e.ratioP99PerRound?.max)} in this run), with whatever else the machine's two cores are doing.`,
          '',
        ]
      : []),
  ];
}

function sweeperSection(s) {
  return [
    '## Sweeper scaling',
    '',
    ...measuredAt(s),
    `One sweep that dead-letters the expired jobs among a live backlog of one type (batches of ${s.batchSize} per Redis call, the default).`,
    '`calls > 10 ms` counts the Redis calls SLOWLOG saw above 10 ms during the sweeps, over all rounds; `slowest call` is the',
    'longest call it saw (it keeps those over 1 ms).',
    '',
    '| layout | live jobs | expired | dead-lettered by the sweep | sweep (ms) | Redis calls | calls > 10 ms | slowest call (ms) |',
    '|---|---|---|---|---|---|---|---|',
    ...s.rows.map(
      (row) =>
        `| ${row.layout} | ${num(row.live)} | ${num(row.expired)} | ${num(row.deadLettered)} | ${range(row.ms, 1)} | ${row.redisCallsPerSweep} | ${row.callsOver10ms} | ${row.slowestCalls === undefined ? 'n/a' : row.slowestCalls.length ? fmt(row.slowestCalls[0].ms, 1) : '< 1'} |`,
    ),
    '',
    `Ratio of the sweep at ${num(s.largest)} to the sweep at ${num(s.smallest)} live jobs: ` +
      Object.entries(s.ratios)
        .map(([layout, ratio]) => `${layout} ${fmt(ratio)}`)
        .join(', ') +
      ` (${verdict(s.goal, 'goal ≤ 1.5, and no call over 10 ms outside waiting-random')}).`,
    '',
    '`waiting-random` is the worst case and has no goal: an expired waiting job is searched for from the consuming',
    'end of the wait list, at most 1,000 entries deep, so no call blocks Redis for long; expired jobs deeper in the',
    'backlog are left to the workers, which dead-letter them at pickup without calling the provider, and to later',
    'sweeps. In a queue whose tasks share one expiry offset (every type but route_callback with `notAfter`), the',
    'expired jobs are the oldest, at the consuming end.',
    '',
  ];
}

function throughputSection(t) {
  const b = t.breakdown;
  const gapUs = (t.cpu.ours.workerMsPerJob - t.cpu.raw.workerMsPerJob) * 1000;
  const steps = b ? b.logLine + b.jobValidation + b.metrics : Number.NaN;
  const lines = [
    '## Processing throughput',
    '',
    ...measuredAt(t),
    `${num(t.jobsPerRound)} \`update_crm\` jobs per round, drained by one worker process at concurrency ${t.concurrency} with a no-op`,
    "delivery: aftercall's `startWorker` with an in-process no-op port, its jobs enqueued beforehand through the producer",
    "(`conversationEnded` of a `no_action` outcome, one task each); raw BullMQ's `Worker` with a no-op processor, the same",
    `job data and options added with \`Queue.addBulk\`. Each side runs in a child process of its own, both on ${t.redis};`,
    'the queue is paused while a round is enqueued, and a round lasts from its resume to its last job. One warm-up round',
    `of ${num(t.warmupJobs)} jobs per side, then ${plural(t.ours.rounds, 'round')}, alternating the sides.`,
    `aftercall's worker logs at \`${t.logLevel}\` (the production default) to a file: one line per job, ${fmt(t.logBytesPerJob, 0)} bytes.`,
    '',
    '| | aftercall | raw BullMQ | ratio | goal |',
    '|---|---|---|---|---|',
    `| jobs/s | ${range(t.ours)} | ${range(t.raw)} | ${fmt(t.ratio)} | ${verdict(t.goal, '≥ 0.8')} |`,
    `| worker process CPU per job (ms) | ${fmt(t.cpu.ours.workerMsPerJob, 3)} | ${fmt(t.cpu.raw.workerMsPerJob, 3)} | ${fmt(t.cpu.ours.workerMsPerJob / t.cpu.raw.workerMsPerJob)} | |`,
    `| Redis CPU per job (ms) | ${fmt(t.cpu.ours.redisMsPerJob, 3)} | ${fmt(t.cpu.raw.redisMsPerJob, 3)} | ${fmt(t.cpu.ours.redisMsPerJob / t.cpu.raw.redisMsPerJob)} | |`,
    `| worker process busy (share of one core) | ${pct(t.cpu.ours.worker)} | ${pct(t.cpu.raw.worker)} | | |`,
    `| machine busy, all processes (share of all cores) | ${pct(t.cpu.ours.allProcesses)} | ${pct(t.cpu.raw.allProcesses)} | | |`,
    '',
    "CPU per job is the process' CPU time (`process.cpuUsage`; Redis: `used_cpu_user + used_cpu_sys`) over a round, divided",
    'by its jobs (medians over rounds); it moves less than jobs/s when other work shares the machine.',
    '',
  ];
  if (b) {
    lines.push(
      `Steps aftercall's handler adds to each job, each timed alone (µs of CPU per job): its log line ${us(b.logLine)}`,
      `(${us(b.logLineWithoutRedaction)} without the logger's redaction paths; written to /dev/null here), the`,
      `validation of the job data (envelope and payload) ${us(b.jobValidation)} through the schemas zod compiles`,
      `(${us(b.jobValidationUncompiled)} through the same schemas uncompiled), and the metrics ${us(b.metrics)}: ${us(steps)} together, against a`,
      `measured gap of ${us(gapUs)} per job in the worker process (timed alone, with warm caches and no garbage left for`,
      'later, each step costs less than in the worker).',
      '',
    );
  }
  if (t.goal.judged && !t.goal.met) {
    lines.push(
      `**Why missed.** With a no-op delivery the worker process is the bottleneck, and its throughput is the inverse of its CPU`,
      `per job: aftercall's worker needs ${fmt(t.cpu.ours.workerMsPerJob / t.cpu.raw.workerMsPerJob)} times raw BullMQ's. Redis is not the`,
      'difference: processing a job runs the same commands on both sides (see Redis cost per task). The work aftercall adds',
      'is in its job handler: the log line (a synchronous write per job), the validation of the job data, the metrics, and',
      'the garbage these leave. With deliveries that take real time (next section) the gap matters much less.',
      '',
    );
  }
  return lines;
}

function ioSection(io) {
  const d = io.delivery;
  const lines = [
    '## I/O-bound concurrency',
    '',
    ...measuredAt(io),
    `Every delivery takes ${io.latencyMs} ms: a receiver on loopback, in a process of its own, answers ${io.latencyMs} ms after reading the`,
    `request (it does not verify signatures). One worker process at concurrency ${io.concurrency} can finish at most`,
    `${num(io.ceiling)} jobs/s. aftercall delivers \`update_crm\` through the real signed webhook (\`WEBHOOK_SECRET\` set,`,
    "`CRM_WEBHOOK_URL` pointing at the receiver), logging at `info` to a file; raw BullMQ's processor POSTs the job's data to",
    `the same receiver with \`fetch\`. ${num(io.jobsPerRound)} jobs per round after a warm-up round of ${num(io.warmupJobs)}, ${plural(io.ours.jobsPerSecond.rounds, 'round')} per side,`,
    `alternating; on ${io.redis}.`,
    '',
    '| | aftercall | raw BullMQ | goal |',
    '|---|---|---|---|',
    `| jobs/s | ${range(io.ours.jobsPerSecond)} | ${range(io.raw.jobsPerSecond)} | |`,
    `| share of the ${num(io.ceiling)} jobs/s ceiling | ${pct(io.ours.efficiency, 1)} | ${pct(io.raw.efficiency, 1)} | ${verdict(io.goal, '≥ 90 %')} |`,
    `| worker process CPU per job (ms) | ${fmt(io.ours.cpu.workerMsPerJob, 3)} | ${fmt(io.raw.cpu.workerMsPerJob, 3)} | |`,
    `| worker process busy (share of one core) | ${pct(io.ours.cpu.worker)} | ${pct(io.raw.cpu.worker)} | |`,
    `| machine busy, all processes (share of all cores) | ${pct(io.ours.cpu.allProcesses)} | ${pct(io.raw.cpu.allProcesses)} | |`,
    '',
    `aftercall / raw BullMQ: ${fmt(io.ratio)}.`,
    '',
  ];
  if (d) {
    lines.push(
      `The delivery path's pieces, timed alone against the same receiver at the same concurrency: Node's \`fetch\` costs`,
      `${fmt(d.fetchMsPerRequest, 3)} ms of CPU per request, \`node:http\` with a keep-alive agent ${fmt(d.nodeHttpMsPerRequest, 3)} ms. A bare loop of requests, no`,
      `queue and no Redis, reaches ${pct(d.fetchRequestsPerSecond / io.ceiling, 1)} of the ceiling with \`fetch\` and ${pct(d.nodeHttpRequestsPerSecond / io.ceiling, 1)} with \`node:http\`. Signing with the`,
      `\`standardwebhooks\` package ${us(d.signStandardWebhooks)} per request (\`node:crypto\`'s HMAC: ${us(d.signNodeCrypto)}). aftercall's webhook`,
      'adapter sends with `node:http` and a keep-alive agent; the raw BullMQ processor uses `fetch`.',
      '',
    );
  }
  if (io.goal.judged && !io.goal.met) {
    lines.push(
      `**Why missed.** The worker process runs short of CPU, not of concurrency: at ${num(io.ours.jobsPerSecond.median)} jobs/s it was busy`,
      `${pct(io.ours.cpu.worker)} of a core, at ${fmt(io.ours.cpu.workerMsPerJob, 2)} ms of CPU per job; ${num(io.ceiling)} jobs/s would need`,
      `${fmt(io.ours.cpu.workerMsPerJob, 2)} cores of one single-threaded process, and every millisecond the event loop is busy delays`,
      `the next job of each of the ${io.concurrency} slots. Much of it is the HTTP client${d ? ` (\`node:http\`: ${fmt(d.nodeHttpMsPerRequest, 2)} ms per request, and a bare loop of it alone reaches ${pct(d.nodeHttpRequestsPerSecond / io.ceiling)}; \`fetch\`: ${fmt(d.fetchMsPerRequest, 2)} ms)` : ''}; raw BullMQ`,
      io.raw.efficiency < 0.9
        ? `with a bare \`fetch\` misses the goal too (${pct(io.raw.efficiency)} of the ceiling). aftercall adds its handler's steps (see throughput)`
        : `with a bare \`fetch\` reaches ${pct(io.raw.efficiency)} of the ceiling, so what tips aftercall over is its own share: its handler's steps (see throughput)`,
      `and the signing above; in all, ${fmt(io.ours.cpu.workerMsPerJob, 2)} ms of CPU per job against raw BullMQ's ${fmt(io.raw.cpu.workerMsPerJob, 2)} ms with \`fetch\`. Other processes on`,
      'the machine take CPU from the worker as well (the machine-busy row).',
      '',
    );
  }
  return lines;
}

function horizontalSection(h) {
  const at = (side, processes) => h.rows.find((row) => row.side === side && row.processes === processes);
  const counts = [...new Set(h.rows.map((row) => row.processes))];
  const lines = [
    '## Horizontal scaling',
    '',
    ...measuredAt(h),
    `The I/O-bound load of the previous section (${h.latencyMs} ms deliveries, concurrency ${h.concurrencyPerProcess} per process) served by ${h.counts.join(', ')}`,
    "worker processes (child processes, `METRICS_PORT=0`), aftercall's and, for comparison, raw BullMQ's; fresh processes",
    `for each count, a warm-up round, then rounds of ${num(h.jobsPerProcess)} jobs per process. CPU is shown in cores (1.00 = one core busy`,
    `for the whole round): the workers' \`process.cpuUsage\`, Redis' \`used_cpu\`, the receiver's; "machine" is the busy share of all`,
    `${h.cores} cores from \`/proc/stat\`, other processes on the machine included.`,
    '',
    '| processes | aftercall jobs/s | × one | raw BullMQ jobs/s | × one | ceiling | aftercall workers (cores) | Redis (cores) | receiver (cores) | machine busy |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...counts.map((processes) => {
      const ours = at('ours', processes);
      const raw = at('raw', processes);
      return `| ${processes} | ${range(ours?.jobsPerSecond)} | ${fmt(ours?.speedup)} | ${range(raw?.jobsPerSecond)} | ${fmt(raw?.speedup)} | ${num(ours?.ceiling)} | ${fmt(ours?.cpu.workers)} | ${fmt(ours?.cpu.redis)} | ${fmt(ours?.cpu.server)} | ${pct(ours?.cpu.allProcesses)} |`;
    }),
    '',
    `Two processes against one: ${fmt(h.speedup2)}× (${verdict(h.goal, 'goal ≥ 1.8')}); raw BullMQ ${fmt(h.rawSpeedup2)}×.${Number.isFinite(h.speedup4) ? ` Four: ${fmt(h.speedup4)}×.` : ''}`,
    '',
  ];
  const two = at('ours', 2);
  if (h.goal.judged && !h.goal.met && two) {
    const need = (2 * at('ours', 1).ceiling * two.cpu.workerMsPerJob) / 1000;
    lines.push(
      `**Why missed.** CPU. With two processes the machine's ${h.cores} cores were ${pct(two.cpu.allProcesses)} busy: the workers used`,
      `${fmt(two.cpu.workers)} cores, Redis ${fmt(two.cpu.redis)}, the receiver ${fmt(two.cpu.server)}, the rest other processes. At`,
      `${fmt(two.cpu.workerMsPerJob, 2)} ms of worker CPU per job, the ${num(two.ceiling)} jobs/s two processes could reach would need`,
      `${fmt(need)} cores for the workers alone. Processes scale while there are cores to run them; on ${h.cores} cores shared with Redis`,
      `and the receiver they cannot${h.rawSpeedup2 < 1.8 ? ', and raw BullMQ stalls the same way (its column)' : `; raw BullMQ, at ${fmt(at('raw', 2).cpu.workerMsPerJob, 2)} ms of worker CPU per job, still fits`}. Run this on a machine`,
      'with more cores, or with the receiver and Redis elsewhere, to see the scaling itself; cheaper deliveries (throughput and',
      'I/O sections) raise the ceiling on this one.',
      '',
    );
  }
  return lines;
}

function redisCostSection(c) {
  const row = (scenario, label, key, digits = 2) =>
    `| ${scenario} | ${label} | ${fmt(c.ours[scenario][key], digits)} | ${fmt(c.raw[scenario][key], digits)} | ${c.ratios[scenario][key] === undefined ? fmt(c.ours[scenario][key] / c.raw[scenario][key]) : fmt(c.ratios[scenario][key])} |`;
  const byCommand = (side, scenario) =>
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
    '',
    `Top-level calls by command: backlog aftercall ${byCommand('ours', 'backlog')}; raw ${byCommand('raw', 'backlog')}. Trickle aftercall`,
    `${byCommand('ours', 'trickle')}; raw ${byCommand('raw', 'trickle')}. Largest ratio ${fmt(c.worstRatio)} (${verdict(c.goal, 'goal ≤ 1.5')}).`,
    '',
    "aftercall's enqueue is one script, like `Queue.add`, that also writes the expiry index and the `created` counter (the extra",
    "commands inside scripts); processing runs BullMQ's own scripts. In the trickle scenario the blocking waits for the",
    'next job (BZPOPMIN on the marker) and the fetch of an empty queue vary with timing on either side.',
    '',
  ];
}

function memorySection(m) {
  const r = m.redisMemory;
  const bytes = (value) => `${num(value)} B`;
  const w = m.workerRss;
  // The samples by stretch of jobs (the forced-GC interval): the sawtooth's band in each, and whether it moves.
  const window = w.gcEvery || Math.ceil(w.jobs / 10);
  const windows = [];
  for (let end = window; end <= w.jobs; end += window) {
    const inside = w.samples.filter((sample) => sample.count > end - window && sample.count <= end);
    if (!inside.length) continue;
    const rss = inside.map((sample) => sample.rssMiB);
    const gc = inside.find((sample) => sample.rssAfterGcMiB !== undefined);
    windows.push(
      `${num(end / 1000)}k ${fmt(Math.min(...rss), 0)}..${fmt(Math.max(...rss), 0)}${gc ? ` → ${fmt(gc.rssAfterGcMiB, 0)}` : ''}`,
    );
  }
  return [
    '## Memory',
    '',
    ...measuredAt(m),
    `Redis memory per task, on ${m.redis}: ${num(m.tasks)} \`update_crm\` tasks enqueued and processed to completion by a`,
    'worker (a no-op delivery) or dead-lettered by it (a delivery that always refuses; raw BullMQ: `UnrecoverableError` into',
    'its failed set). "keys": `MEMORY USAGE` of the job hashes plus the sorted sets that list them (completed or failed, and',
    'aftercall\'s expiry index), per job; "used_memory": the growth of `INFO used_memory` per job, allocator included. The',
    'events stream is a per-queue cost (capped at about 10,000 entries), not per job.',
    '',
    '| per job | aftercall: keys | of which the job hash | aftercall: used_memory | raw BullMQ: keys | raw BullMQ: used_memory |',
    '|---|---|---|---|---|---|',
    `| retained completed job (kept for \`DEDUPE_WINDOW\`) | ${bytes(r.completed.ours.perTaskKeys)} | ${bytes(r.completed.ours.jobHash)} | ${bytes(r.completed.ours.usedMemoryPerTask)} | ${bytes(r.completed.raw.perTaskKeys)} | ${bytes(r.completed.raw.usedMemoryPerTask)} |`,
    `| dead-letter entry (kept until replayed or purged) | ${bytes(r.deadLetter.ours.perTaskKeys)} | ${bytes(r.deadLetter.ours.jobHash)} | ${bytes(r.deadLetter.ours.usedMemoryPerTask)} | ${bytes(r.deadLetter.raw.perTaskKeys)} | ${bytes(r.deadLetter.raw.usedMemoryPerTask)} |`,
    '',
    `A completed job keeps its expiry-index entry until its \`expiresAt\` passes and a sweep drops it (${bytes(r.completed.ours.expiryIndexPerTask)} per job here);`,
    "a dead-letter entry has none. Raw BullMQ's failed job also stores the stack trace, which aftercall's dead letters do not.",
    `At 24 h retention, every 1,000 tasks a day hold about ${fmt((r.completed.ours.usedMemoryPerTask * 1000) / 2 ** 20, 1)} MiB of Redis.`,
    '',
    `Worker RSS: one aftercall worker process (concurrency ${w.concurrency}, no-op delivery, logging at \`info\` to /dev/null) over`,
    `${num(w.jobs)} jobs fed by the producer (backlog under 10,000), sampled every ${num(w.sampleEvery)} jobs, and every ${num(w.gcEvery)} jobs also right`,
    `after a forced full GC (\`--expose-gc\`); the first ${num(w.warmupJobs)} jobs are the warm-up.`,
    '',
    '| after warm-up | RSS (MiB) | heap used (MiB) | max / min − 1 |',
    '|---|---|---|---|',
    `| as sampled: min..max | ${fmt(w.rssMiB.min, 1)}..${fmt(w.rssMiB.max, 1)} | ${fmt(w.heapUsedMiB.min, 1)}..${fmt(w.heapUsedMiB.max, 1)} | ${pct(w.rssMiB.growth, 1)} |`,
    `| as sampled: first, last | ${fmt(w.rssMiB.first, 1)}, ${fmt(w.rssMiB.last, 1)} | ${fmt(w.heapUsedMiB.first, 1)}, ${fmt(w.heapUsedMiB.last, 1)} | |`,
    ...(w.rssAfterGcMiB
      ? [
          `| after a full GC: min..max | ${fmt(w.rssAfterGcMiB.min, 1)}..${fmt(w.rssAfterGcMiB.max, 1)} | ${fmt(w.heapUsedAfterGcMiB.min, 1)}..${fmt(w.heapUsedAfterGcMiB.max, 1)} | ${pct(w.rssAfterGcMiB.growth, 1)} |`,
          `| after a full GC: first, last | ${fmt(w.rssAfterGcMiB.first, 1)}, ${fmt(w.rssAfterGcMiB.last, 1)} | ${fmt(w.heapUsedAfterGcMiB.first, 1)}, ${fmt(w.heapUsedAfterGcMiB.last, 1)} | |`,
        ]
      : []),
    '',
    `Flat within 10 % (${verdict(m.goal, 'no trend, no growth of the heap kept')}): mean RSS over the last quarter of the samples against the first,`,
    `${w.trend.change >= 0 ? '+' : ''}${pct(w.trend.change, 1)} (${fmt(w.trend.firstQuarterMeanMiB, 1)} → ${fmt(w.trend.lastQuarterMeanMiB, 1)} MiB); heap in use right after a full GC ${w.heapUsedAfterGcMiB ? pct(w.heapUsedAfterGcMiB.growth, 1) : 'n/a'} max / min.`,
    `Not judged: RSS as sampled moves within a ${pct(w.rssMiB.growth, 1)} band (max / min) with the heap's sawtooth between collections, and memory a`,
    'collection frees is not returned to the system at once (RSS right after a full GC barely drops).',
    `RSS by stretch of ${num(window)} jobs (min..max MiB, as sampled; then right after the full GC at its end): ${windows.join('; ')}.`,
    ...(m.goal.judged && !m.goal.met && w.heapUsedAfterGcMiB
      ? [
          '',
          `**Why missed.** RSS swings, it does not grow. The heap in use after a full GC stays at ${fmt(w.heapUsedAfterGcMiB.min, 1)}..${fmt(w.heapUsedAfterGcMiB.max, 1)} MiB`,
          `(${pct(w.heapUsedAfterGcMiB.growth, 1)}) over the whole run: the process keeps nothing per job. Between V8's full collections garbage piles`,
          `up (heap used as sampled: ${fmt(w.heapUsedMiB.min, 0)}..${fmt(w.heapUsedMiB.max, 0)} MiB) and RSS follows it; memory freed by a collection is not`,
          'all returned to the system at once (RSS right after a forced GC barely drops), so RSS moves within a band set by the',
          "heap's growth between collections, wider than 10 % of a ~120 MiB process. The band's width is the garbage made per job",
          "(see the throughput section's steps), not a leak.",
        ]
      : []),
    '',
  ];
}

const SECTIONS = {
  'enqueue-latency': enqueueLatencySection,
  'sweeper-scaling': sweeperSection,
  throughput: throughputSection,
  'io-concurrency': ioSection,
  'horizontal-scaling': horizontalSection,
  'redis-cost': redisCostSection,
  memory: memorySection,
};

function report() {
  const m = results.machine;
  const lines = [
    '# Performance',
    '',
    'Generated by `npm run bench` (do not edit by hand). Every ratio compares aftercall with raw BullMQ',
    'measured in the same run, on the same machine and Redis. Medians over rounds, with the spread (min..max).',
    '',
    `Machine: ${m.cores} cores, ${m.cpu}, ${m.memoryGiB} GiB; Node.js ${m.node}; Redis ${m.redis} on loopback. Date: ${m.date}.`,
    'The process-level benchmarks (throughput and after) run each side in child processes of its own, on a private',
    "redis-server without persistence started for the benchmark; the machine's cores are shared by the workers, Redis,",
    'the receiver of the I/O-bound benchmarks and whatever else runs on it.',
    '',
  ];
  for (const [name, entry] of Object.entries(results.benchmarks)) {
    if (entry.error) {
      lines.push(`## ${name}`, '', `Failed: ${entry.error}`, '');
      continue;
    }
    lines.push(...SECTIONS[name](entry));
  }
  const timed = Object.entries(results.benchmarks).filter(([, entry]) => Number.isFinite(entry.seconds));
  if (timed.length)
    lines.push(`Run time: ${timed.map(([name, entry]) => `${name} ${fmt(entry.seconds, 0)} s`).join(', ')}.`, '');
  return `${lines.join('\n')}\n`;
}

const text = report();
if (!quick) {
  mkdirSync(new URL('../docs/', import.meta.url), { recursive: true });
  writeFileSync(new URL('../docs/PERFORMANCE.md', import.meta.url), text);
}
process.stdout.write(text);
if (failures.length) {
  process.stderr.write(`bench: failed: ${failures.join(', ')}\n`);
  process.exitCode = 1;
}
