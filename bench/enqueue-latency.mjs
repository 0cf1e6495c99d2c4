// Enqueue latency: conversationEnded of a five-task outcome, sequential calls, against five
// concurrent raw BullMQ Queue.add calls with the same job options, in the same run.
import { Queue } from 'bullmq';
import { createProducer } from '../dist/src/index.js';
import { acrossRounds, alternating, redis, REDIS_URL, removePrefix, summarize } from './lib.mjs';

const HOUR = 3_600_000;
const TYPES = ['send_email', 'update_crm', 'schedule_reminder', 'update_ticket', 'follow_up_survey'];

function outcome(id, now) {
  return {
    conversationId: `bench-${id}`,
    endedAt: new Date(now - 1_000).toISOString(),
    outcome: 'booked',
    customer: { id: 'cus-1', name: 'Ada Lovelace', email: 'ada@example.com', phone: '+14155550100', locale: 'en-GB' },
    booking: {
      id: `bk-${id}`,
      startsAt: new Date(now + 72 * HOUR).toISOString(),
      address: '1 Main St',
      service: 'Check-up',
    },
    ticket: { id: `T-${id}`, status: 'open' },
    surveyOptIn: true,
    summary: 'Booked a check-up for Monday.',
  };
}

export async function enqueueLatency({ quick }) {
  const calls = quick ? 200 : 2_000;
  const rounds = quick ? 2 : 5;
  const warmup = quick ? 50 : 300;
  const ours = `bench-enq-ours-${process.pid}`;
  const raw = `bench-enq-raw-${process.pid}`;
  const admin = redis();
  const producer = createProducer({ redisUrl: REDIS_URL, prefix: ours });
  const rawConnection = redis();
  const queues = TYPES.map((type) => new Queue(`{${type}}`, { connection: rawConnection, prefix: raw }));
  let sequence = 0;

  const runOurs = async (n) => {
    const samples = [];
    for (let i = 0; i < n; i += 1) {
      const now = Date.now();
      const input = outcome(sequence++, now);
      const started = performance.now();
      await producer.conversationEnded(input);
      samples.push(performance.now() - started);
    }
    return samples;
  };
  const runRaw = async (n) => {
    const samples = [];
    for (let i = 0; i < n; i += 1) {
      const now = Date.now();
      const input = outcome(sequence++, now);
      const started = performance.now();
      await Promise.all(
        queues.map((queue, index) =>
          queue.add(
            TYPES[index],
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

  const run = { ours: runOurs, raw: runRaw };
  await runOurs(warmup);
  await runRaw(warmup);
  const perRound = [];
  for (let round = 0; round < rounds; round += 1) {
    const samples = {};
    for (const side of alternating(round)) samples[side] = await run[side](calls);
    perRound.push({ ours: summarize(samples.ours), raw: summarize(samples.raw) });
  }
  // Where a call's time goes: Redis' time executing its commands (INFO commandstats, the
  // scripts' inner commands included) and this process' CPU, per call, one pass per side.
  const costOf = async (run) => {
    await admin.config('RESETSTAT');
    const cpu = process.cpuUsage();
    await run(calls);
    const used = process.cpuUsage(cpu);
    const stats = await admin.info('commandstats');
    let redisUs = 0;
    for (const [, command, usec] of stats.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm)) {
      if (command !== 'info' && !command.startsWith('config')) redisUs += Number(usec);
    }
    return { redisUsPerCall: redisUs / calls, clientCpuUsPerCall: (used.user + used.system) / calls };
  };
  const cost = { ours: await costOf(runOurs), raw: await costOf(runRaw) };

  await producer.close();
  await Promise.all(queues.map((queue) => queue.close()));
  rawConnection.disconnect();
  await removePrefix(admin, ours);
  await removePrefix(admin, raw);
  admin.disconnect();

  const pick = (side, key) => acrossRounds(perRound.map((round) => round[side][key]));
  const result = {
    callsPerRound: calls,
    ours: { p50: pick('ours', 'p50'), p99: pick('ours', 'p99') },
    raw: { p50: pick('raw', 'p50'), p99: pick('raw', 'p99') },
    cost,
  };
  result.ratioP50 = result.ours.p50.median / result.raw.p50.median;
  result.ratioP99 = result.ours.p99.median / result.raw.p99.median;
  result.ratioP99PerRound = acrossRounds(perRound.map((round) => round.ours.p99 / round.raw.p99));
  result.goal = { metric: 'p99 ratio', limit: 1.2, met: result.ratioP99 <= 1.2 };
  return result;
}
