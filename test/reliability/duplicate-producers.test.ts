/**
 * Scenario 4, duplicate producers: each outcome is submitted three times concurrently,
 * from three processes (three `aftercall enqueue` runs over the same NDJSON file). One set
 * of jobs, one set of deliveries: for each task exactly one process reports it created.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EnqueueResult } from '../../src/producer/producer.js';
import { typeKeys } from '../../src/redis/keys.js';
import { syntheticOutcome } from '../../dev/synthetic-load.js';
import { BIN } from '../helpers/child-worker.js';
import { REDIS_ENV, redis, removePrefix, uniquePrefix } from '../helpers/redis.js';
import {
  invariantViolations,
  recordAccepted,
  report,
  scale,
  settle,
  startFleet,
  type AcceptedTask,
  type Fleet,
} from './harness.js';

const prefix = uniquePrefix('chaos-dup');
const client = redis();
let fleet: Fleet | undefined;
const dir = mkdtempSync(join(tmpdir(), 'aftercall-dup-'));

afterAll(async () => {
  await fleet?.stop();
  await removePrefix(client, prefix);
  client.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

function enqueueProcess(file: string): Promise<{ code: number | null; results: EnqueueResult[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'enqueue', file], {
      env: {
        PATH: process.env.PATH ?? '',
        ...REDIS_ENV,
        AFTERCALL_PREFIX: prefix,
        TASK_FOLLOW_UP_SURVEY_DELAY: '0',
        LOG_LEVEL: 'silent',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('close', (code) =>
      resolve({
        code,
        stderr,
        results: stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as EnqueueResult),
      }),
    );
  });
}

describe('reliability: duplicate producers', () => {
  it('creates one set of jobs and one set of deliveries from outcomes submitted three times at once', async () => {
    const conversations = scale(150, 2_000);
    fleet = await startFleet({ prefix, workers: 2 });
    const now = Date.now();
    const file = join(dir, 'outcomes.ndjson');
    writeFileSync(
      file,
      Array.from({ length: conversations }, (_, index) =>
        JSON.stringify(syntheticOutcome(index, { runId: prefix, now })),
      ).join('\n'),
    );

    const runs = await Promise.all([enqueueProcess(file), enqueueProcess(file), enqueueProcess(file)]);
    for (const run of runs) {
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.results).toHaveLength(conversations);
    }
    const created = new Map<string, number>();
    const accepted = new Map<string, AcceptedTask>();
    for (const run of runs) {
      for (const result of run.results) {
        for (const task of result.tasks) {
          const id = `${task.type}/${task.jobId}`;
          created.set(id, (created.get(id) ?? 0) + (task.created ? 1 : 0));
          recordAccepted(accepted, task, result.conversationId);
        }
      }
    }
    // exactly one of the three processes created each task
    expect([...created.values()].filter((count) => count !== 1)).toEqual([]);
    // one job per task in Redis: the producers' creation counters add up to the tasks
    let counted = 0;
    for (const type of new Set([...accepted.values()].map((task) => task.type))) {
      counted += Number(await client.get(typeKeys(prefix, type).id));
    }
    expect(counted).toBe(accepted.size);

    const accounting = await settle(client, fleet, { accepted }, scale(60_000, 300_000));
    report('4. Duplicate producers', accounting, { submissions: 3, conversations });
    expect(invariantViolations(accounting)).toEqual([]);
    expect(accounting.delivered).toBe(accepted.size);
  });
});
