/**
 * The exact command BullMQ's `Queue.add` would send for a job, without sending it.
 *
 * BullMQ's backend builds an add's keys and arguments (which script, packed options, the
 * job's data) and hands them to `runCommand` of the client or transaction it is given.
 * Given a recorder instead, it hands them over without touching Redis; aftercall then
 * runs them inside its own enqueue script (enqueue-task.lua), which embeds BullMQ's add
 * script unchanged. So aftercall writes jobs exactly as BullMQ does, through BullMQ's own
 * public backend method, and adds its expiry index in the same atomic step.
 */
import { Job, type IRedisTransaction, type JobsOptions, type Queue } from 'bullmq';
import { ENQUEUE_VARIANTS, type ScriptName } from './scripts.js';

/** Name of aftercall's custom backoff strategy: jobs name it, workers register it (worker/retry-policy.ts). */
export const BACKOFF_STRATEGY = 'aftercall';

export interface EnqueueCommand {
  script: ScriptName;
  /** BullMQ's KEYS followed by its ARGV. */
  keysAndArgs: (string | number | Buffer)[];
}

export function bullmqAddCommand(
  queue: Queue,
  name: string,
  data: unknown,
  opts: JobsOptions,
  jobId: string,
): EnqueueCommand {
  const job = new Job(queue, name, data, opts, jobId);
  let recorded: { command: string; args: (string | number | Buffer)[] } | undefined;
  const recorder = {
    runCommand(command: string, args: (string | number | Buffer)[]) {
      recorded = { command, args };
      return 1;
    },
  } as unknown as IRedisTransaction;
  // Records synchronously; the promise only reports the recorder's fake reply.
  queue
    .getBackend()
    .addJobToTransaction(recorder, job.asJSON(), jobId, {}, queue.keys)
    .catch(() => undefined);
  if (!recorded) throw new Error('BullMQ did not build an add command');
  const bullScript = recorded.command.split(':')[0] as keyof typeof ENQUEUE_VARIANTS;
  const script = ENQUEUE_VARIANTS[bullScript];
  if (!script) throw new Error(`BullMQ chose the ${bullScript} script, which aftercall does not wrap`);
  return { script, keysAndArgs: recorded.args };
}
