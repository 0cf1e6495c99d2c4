/**
 * The jobs still pending in Redis, read from the queues' own structures: waiting (wait,
 * paused, prioritized), delayed, and waiting for a retry (aftercall's retrying index),
 * each with the expiresAt its data carries. A structural check that needs no clock: after
 * a sweep at `now`, none of them may have expired at `now`.
 */
import type { Redis } from 'ioredis';
import { typeKeys } from '../../src/redis/keys.js';
import { taskTypes, type TaskType } from '../../src/tasks/catalog.js';

export interface PendingJob {
  type: TaskType;
  jobId: string;
  /** `retrying`: delayed or waiting again after a failed attempt (in the retrying index too). */
  state: 'waiting' | 'delayed' | 'retrying';
  expiresAt: number;
}

export async function pendingJobs(
  client: Redis,
  prefix: string,
  types: readonly TaskType[] = taskTypes,
): Promise<PendingJob[]> {
  const jobs: PendingJob[] = [];
  for (const type of types) {
    const keys = typeKeys(prefix, type);
    const [wait, paused, prioritized, delayed, retrying] = await Promise.all([
      client.lrange(keys.wait, 0, -1),
      client.lrange(keys.paused, 0, -1),
      client.zrange(keys.prioritized, 0, '-1'),
      client.zrange(keys.delayed, 0, '-1'),
      client.zrange(keys.retrying, 0, '-1'),
    ]);
    const states = new Map<string, PendingJob['state']>();
    for (const jobId of [...wait, ...paused, ...prioritized]) states.set(jobId, 'waiting');
    for (const jobId of delayed) states.set(jobId, 'delayed');
    // A job in the retrying index but in no list is active: a worker took it and has not yet
    // struck it off the index. It is not pending.
    for (const jobId of retrying) if (states.has(jobId)) states.set(jobId, 'retrying');
    const ids = [...states.keys()];
    const pipeline = client.pipeline();
    for (const jobId of ids) pipeline.hget(keys.job(jobId), 'data');
    const replies = (await pipeline.exec()) ?? [];
    ids.forEach((jobId, index) => {
      const data = replies[index]?.[1] as string | null;
      let expiresAt = Number.NaN;
      try {
        expiresAt = Number((JSON.parse(data ?? 'null') as { expiresAt?: unknown } | null)?.expiresAt);
      } catch {
        // unreadable data: reported with expiresAt NaN
      }
      jobs.push({ type, jobId, state: states.get(jobId)!, expiresAt });
    });
  }
  return jobs;
}

/** Pending jobs whose expiresAt is at or before `now` (or unreadable), as `type/jobId (state)`. */
export async function pendingPastExpiry(client: Redis, prefix: string, now: number): Promise<string[]> {
  return (await pendingJobs(client, prefix))
    .filter((job) => !(job.expiresAt > now))
    .map((job) => `${job.type}/${job.jobId} (${job.state}, expiresAt ${job.expiresAt})`);
}

/**
 * Jobs waiting for a retry whose next attempt (the retrying index's score) could not end
 * before their expiry: the job handler dead-letters those instead (the retry horizon).
 */
export async function retriesPastHorizon(client: Redis, prefix: string, attemptMs: number): Promise<string[]> {
  const found: string[] = [];
  for (const type of taskTypes) {
    const keys = typeKeys(prefix, type);
    const scored = await client.zrange(keys.retrying, 0, '-1', 'WITHSCORES');
    for (let index = 0; index < scored.length; index += 2) {
      const jobId = scored[index]!;
      const retryAt = Number(scored[index + 1]);
      const data = await client.hget(keys.job(jobId), 'data');
      if (data === null) continue; // finished and removed since
      const expiresAt = Number((JSON.parse(data) as { expiresAt?: unknown }).expiresAt);
      if (!(retryAt + attemptMs < expiresAt))
        found.push(`${type}/${jobId} (retry at ${retryAt}, expires ${expiresAt})`);
    }
  }
  return found;
}

/**
 * Pending jobs past their expiry at `now` that no sweep will look at again within
 * `recheckMs`: their expiry-index entry is missing or scored later. A sweep that finds an
 * expired job active (a worker holds it) looks at it again after a re-check interval
 * (5 s by default); if the job then went back to waiting (its lock lapsed), it is due
 * for the sweep again within that interval, not forgotten.
 */
export async function forgottenPastExpiry(
  client: Redis,
  prefix: string,
  now: number,
  recheckMs: number,
): Promise<string[]> {
  const forgotten: string[] = [];
  for (const job of await pendingJobs(client, prefix)) {
    if (job.expiresAt > now) continue;
    const due = await client.zscore(typeKeys(prefix, job.type).expiry, job.jobId);
    if (due === null || Number(due) > now + recheckMs)
      forgotten.push(`${job.type}/${job.jobId} (${job.state}, expiresAt ${job.expiresAt}, index entry ${due})`);
  }
  return forgotten;
}
