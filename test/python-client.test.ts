/**
 * examples/python/aftercall_client.py (standard library only) against the real server:
 * an outcome is enqueued, its repeat creates nothing, a bad one raises OutcomeRejected
 * with the field errors, a batch gets one result per item, status is read back, a wrong
 * role raises a 403 error, and an unreachable server raises Unavailable after its retries.
 * Skipped, saying so, where python3 is missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, TOKENS, type TestApi } from './helpers/api-server.js';
import { freePort } from './helpers/free-port.js';
import { bookedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, uniquePrefix } from './helpers/redis.js';

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const hasPython = python.status === 0;
if (!hasPython) console.log('python-client.test: skipped: python3 is not on this machine (it runs the example client)');

const examples = fileURLToPath(new URL('../examples/python', import.meta.url));
const client = redis();
const prefix = uniquePrefix('python-client');
let api: TestApi;

beforeAll(async () => {
  if (hasPython) api = await startApi(prefix);
});
afterAll(async () => {
  await api?.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

const SCRIPT = `
import json, os, sys
sys.path.insert(0, os.environ["EXAMPLES"])
from aftercall_client import AftercallClient, AftercallError, OutcomeRejected, Unavailable

out = {}
client = AftercallClient(os.environ["URL"], os.environ["INGEST"])
outcome = json.loads(os.environ["OUTCOME"])
out["first"] = client.conversation_ended(outcome)
out["repeat"] = client.conversation_ended(outcome)
try:
    client.conversation_ended({"conversationId": "py-bad", "outcome": "booked"})
except OutcomeRejected as rejected:
    out["rejected"] = {"status": rejected.status, "issues": rejected.issues}
out["batch"] = client.conversation_ended_batch([outcome, {"conversationId": 1}])
try:
    client.conversation_tasks(outcome["conversationId"])
except AftercallError as error:
    out["wrong_role"] = {"status": error.status, "error": error.error}
out["tasks"] = AftercallClient(os.environ["URL"], os.environ["READ"]).conversation_tasks(outcome["conversationId"])
out["repr"] = repr(client)
try:
    AftercallClient(os.environ["NOWHERE"], "x" * 20, timeout=1, retries=2, max_retry_wait=0.05).conversation_ended(outcome)
except Unavailable as error:
    out["unavailable"] = {"status": error.status, "error": error.error}
print(json.dumps(out))
`;

function runPython(env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-I', '-B', '-c', SCRIPT], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe.skipIf(!hasPython)('the Python client', () => {
  it('talks to the server with the standard library only', async () => {
    const outcome = bookedOutcome('py-1');
    // spawn, not spawnSync: the server runs in this process and must keep answering.
    const run = await runPython({
      PATH: process.env.PATH ?? '',
      EXAMPLES: examples,
      URL: api.url,
      INGEST: TOKENS.ingest,
      READ: TOKENS.read,
      OUTCOME: JSON.stringify(outcome),
      NOWHERE: `http://127.0.0.1:${await freePort()}`,
    });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.first.conversationId).toBe('py-1');
    expect(out.first.tasks.every((task: { created: boolean }) => task.created)).toBe(true);
    expect(out.repeat.tasks.every((task: { created: boolean }) => !task.created)).toBe(true);
    expect(out.rejected.status).toBe(400);
    expect(out.rejected.issues.map((issue: { path: string }) => issue.path)).toEqual(
      expect.arrayContaining(['endedAt', 'customer']),
    );
    expect(out.batch.map((item: { status: number }) => item.status)).toEqual([202, 400]);
    expect(out.wrong_role).toEqual({ status: 403, error: 'forbidden' });
    expect(out.tasks.map((task: { type: string }) => task.type).sort()).toEqual(
      out.first.tasks.map((task: { type: string }) => task.type).sort(),
    );
    expect(out.repr).not.toContain(TOKENS.ingest);
    expect(out.unavailable).toEqual({ status: 0, error: 'unreachable' });
  });
});
