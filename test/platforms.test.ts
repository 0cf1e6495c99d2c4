/**
 * The platform receivers through real HTTP: signatures made with the platforms' own SDKs
 * (retell-sdk's `sign`; ElevenLabs' scheme checked against `webhooks.constructEvent`) or
 * their documented scheme (Vapi), one realistic payload per platform mapped to the
 * expected outcome and the catalog's tasks, duplicate deliveries, and events that verify
 * but cannot be mapped: kept, counted, listed, replayed once the mapping is fixed.
 */
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElevenLabsClient } from '@elevenlabs/elevenlabs-js';
import { sign as retellSign, verify as retellVerify } from 'retell-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationOutcome } from '../src/contract/conversation-outcome.js';
import { loadHttpConfig } from '../src/http/environment.js';
import { elevenlabs } from '../src/http/platforms/elevenlabs.js';
import { PLATFORMS } from '../src/http/platforms/ingest.js';
import { loadMapping, mapCall } from '../src/http/platforms/mapping.js';
import { conversationStatus } from '../src/ops/status.js';
import { createProducer, type Producer } from '../src/producer/producer.js';
import { RejectedEventStore } from '../src/redis/rejected-events.js';
import { resolveTaskConfigs } from '../src/tasks/catalog.js';
import { planOutcome } from '../src/tasks/plan.js';
import { apiEnv, auth, call, startApi, type TestApi } from './helpers/api-server.js';
import { BIN } from './helpers/child-worker.js';
import { keysWithPrefix, redis, removePrefix, TEST_REDIS, uniquePrefix } from './helpers/redis.js';

const RETELL_KEY = 'key_retell_test_0123456789abcdef';
const ELEVENLABS_SECRET = 'wsec_elevenlabs_test_0123456789abcdef';
const VAPI_SECRET = 'vapi-shared-secret-0123456789';
const VAPI_HMAC = 'vapi-hmac-secret-0123456789';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/platforms/${name}.json`, import.meta.url), 'utf8');
const RETELL = fixture('retell-call-analyzed');
const VAPI = fixture('vapi-end-of-call-report');
const ELEVENLABS = fixture('elevenlabs-post-call-transcription');

const client = redis();
const prefix = uniquePrefix('platforms');
let now = Date.now();
let producer: Producer;
let api: TestApi;
let hmacApi: TestApi;
let bare: TestApi;
const scratch = mkdtempSync(join(tmpdir(), 'aftercall-platforms-'));

beforeAll(async () => {
  // The fixtures' calls ended in the past: the producer's clock is set to just after each.
  producer = createProducer({ redis: TEST_REDIS, prefix, clock: () => now });
  api = await startApi(
    prefix,
    { RETELL_API_KEY: RETELL_KEY, ELEVENLABS_WEBHOOK_SECRET: ELEVENLABS_SECRET, VAPI_WEBHOOK_SECRET: VAPI_SECRET },
    { producer },
  );
  hmacApi = await startApi(
    prefix,
    {
      VAPI_HMAC_SECRET: VAPI_HMAC,
      VAPI_HMAC_SIGNATURE_HEADER: 'X-Acme-Sig',
      VAPI_HMAC_TIMESTAMP_HEADER: 'X-Acme-Time',
    },
    { producer },
  );
  bare = await startApi(prefix);
});

afterAll(async () => {
  await api?.close();
  await hmacApi?.close();
  await bare?.close();
  await producer?.close();
  await removePrefix(client, prefix);
  client.disconnect();
  rmSync(scratch, { recursive: true, force: true });
});

const hex = (secret: string, text: string) => createHmac('sha256', secret).update(text).digest('hex');
const elevenLabsHeader = (body: string, secret = ELEVENLABS_SECRET, seconds = Math.floor(Date.now() / 1000)) =>
  `t=${seconds},v0=${hex(secret, `${seconds}.${body}`)}`;
const json = { 'content-type': 'application/json' };

const postRetell = async (body: string, key = RETELL_KEY, target = api) =>
  call(
    `${target.url}/v1/platforms/retell`,
    'POST',
    { ...json, 'x-retell-signature': await retellSign(body, key) },
    body,
  );
const postElevenLabs = (body: string, header = elevenLabsHeader(body), target = api) =>
  call(`${target.url}/v1/platforms/elevenlabs`, 'POST', { ...json, 'elevenlabs-signature': header }, body);
const postVapi = (body: string, headers: Record<string, string> = { 'x-vapi-secret': VAPI_SECRET }, target = api) =>
  call(`${target.url}/v1/platforms/vapi`, 'POST', { ...json, ...headers }, body);

const store = () => new RejectedEventStore(client, prefix);
const jobKeys = async () => (await keysWithPrefix(client, prefix)).filter((key) => !key.includes('aftercall-ingest'));
const expectedTypes = (outcome: ConversationOutcome, at: number) =>
  planOutcome(outcome, resolveTaskConfigs(), at)
    .tasks.map((task) => task.type)
    .sort();

describe('one realistic payload per platform', () => {
  it('Retell call_analyzed, signed with retell-sdk, maps to the outcome and produces its tasks', async () => {
    const payload = JSON.parse(RETELL);
    const expected: ConversationOutcome = {
      conversationId: 'retell:Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6',
      endedAt: new Date(payload.call.end_timestamp).toISOString(),
      outcome: 'booked',
      customer: { id: '+12137771234', name: 'John Doe', email: 'john.doe@example.com', phone: '+12137771234' },
      booking: {
        id: 'BK-1042',
        startsAt: '2024-05-03T15:00:00-07:00',
        address: '1200 Sunset Blvd, Los Angeles, CA',
        service: 'AC repair',
      },
      sentiment: 'positive',
      summary: payload.call.call_analysis.call_summary,
      surveyOptIn: true,
    };
    const mapped = mapCall('retell', PLATFORMS.retell.callOf(payload), loadMapping(undefined, 'no_action'));
    expect(mapped.ok && mapped.outcome).toEqual(expected);

    now = payload.call.end_timestamp + 60_000;
    const answer = await postRetell(RETELL);
    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ accepted: true, conversationId: expected.conversationId });
    const types = answer.body.result.tasks.map((task: { type: string }) => task.type).sort();
    expect(types).toEqual(expectedTypes(expected, now));
    expect(types).toEqual(['follow_up_survey', 'schedule_reminder', 'send_email', 'update_crm']);
    expect(answer.body.result.tasks.every((task: { created: boolean }) => task.created)).toBe(true);
  });

  it('Vapi end-of-call-report, with X-Vapi-Secret or Authorization: Bearer, maps and enqueues', async () => {
    const payload = JSON.parse(VAPI);
    const expected: ConversationOutcome = {
      conversationId: 'vapi:4e1f2c8a-9b7d-4c5e-8a1f-0c2d3e4f5a6b',
      endedAt: '2024-10-27T03:24:10.000Z',
      outcome: 'callback_requested',
      customer: { id: 'CUST-20931', name: 'Maria Lopez', phone: '+14155550123' },
      callback: {
        reason: 'Router drops the connection several times an hour',
        priority: 'high',
        notAfter: '2024-10-27T20:00:00Z',
      },
      summary: payload.message.analysis.summary,
    };
    const mapped = mapCall('vapi', PLATFORMS.vapi.callOf(payload), loadMapping(undefined, 'no_action'));
    expect(mapped.ok && mapped.outcome).toEqual(expected);
    now = Date.parse(payload.message.endedAt) + 60_000;
    const answer = await postVapi(VAPI);
    expect(answer.status).toBe(202);
    expect(answer.body.result.tasks.map((task: { type: string }) => task.type).sort()).toEqual(
      expectedTypes(expected, now),
    );
    const bearer = await postVapi(VAPI, { authorization: `Bearer ${VAPI_SECRET}` });
    expect(bearer.status).toBe(202);
    expect(bearer.body.result.tasks.every((task: { created: boolean }) => !task.created)).toBe(true);
  });

  it('ElevenLabs post_call_transcription, signed by its documented scheme, maps and enqueues', async () => {
    const payload = JSON.parse(ELEVENLABS);
    const expected: ConversationOutcome = {
      conversationId: 'elevenlabs:conv_01jmb4dqg9e2fsvzk7q3n8c5xa',
      endedAt: new Date((1739537180 + 117) * 1000).toISOString(),
      outcome: 'resolved',
      customer: { id: '+442071838750', name: 'Jane Smith', email: 'j.smith@example.co.uk', phone: '+442071838750' },
      ticket: { id: 'TCK-88812', status: 'solved', resolution: 'Refund reissued to the original card' },
      summary: payload.data.analysis.transcript_summary,
    };
    const mapped = mapCall('elevenlabs', PLATFORMS.elevenlabs.callOf(payload), loadMapping(undefined, 'no_action'));
    expect(mapped.ok && mapped.outcome).toEqual(expected);
    now = (1739537180 + 117) * 1000 + 60_000;
    const answer = await postElevenLabs(ELEVENLABS);
    expect(answer.status).toBe(202);
    const types = answer.body.result.tasks.map((task: { type: string }) => task.type).sort();
    expect(types).toEqual(expectedTypes(expected, now));
    expect(types).toEqual(['update_crm', 'update_ticket']);
  });

  it('a duplicate delivery creates no second task', async () => {
    now = JSON.parse(RETELL).call.end_timestamp + 60_000;
    const before = (await jobKeys()).sort();
    const results = await Promise.all([postRetell(RETELL), postRetell(RETELL), postRetell(RETELL)]);
    for (const answer of results) {
      expect(answer.status).toBe(202);
      expect(answer.body.result.tasks.every((task: { created: boolean }) => !task.created)).toBe(true);
    }
    expect((await jobKeys()).sort()).toEqual(before);
    const status = await conversationStatus(client, prefix, 'retell:Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6');
    expect(status.map((task) => task.type).sort()).toEqual([
      'follow_up_survey',
      'schedule_reminder',
      'send_email',
      'update_crm',
    ]);
  });
});

describe('signatures against the raw body', () => {
  it('Retell: a wrong key, a tampered body and a timestamp outside 5 minutes are each 401; nothing stored', async () => {
    const before = (await keysWithPrefix(client, prefix)).sort();
    expect((await postRetell(RETELL, `${RETELL_KEY}x`)).status).toBe(401);
    const signature = await retellSign(RETELL, RETELL_KEY);
    const tampered = RETELL.replace('BK-1042', 'BK-1043');
    const tamperedAnswer = await call(
      `${api.url}/v1/platforms/retell`,
      'POST',
      { ...json, 'x-retell-signature': signature },
      tampered,
    );
    expect(tamperedAnswer).toMatchObject({ status: 401, body: { error: 'invalid_signature' } });
    // Whitespace re-encoding of the same JSON is a different body: refused too.
    const reformatted = JSON.stringify(JSON.parse(RETELL));
    expect(
      (await call(`${api.url}/v1/platforms/retell`, 'POST', { ...json, 'x-retell-signature': signature }, reformatted))
        .status,
    ).toBe(401);
    const old = Date.now() - 6 * 60_000;
    const stale = `v=${old},d=${hex(RETELL_KEY, RETELL + old)}`;
    expect(await retellVerify(RETELL, RETELL_KEY, stale)).toBe(false); // the SDK agrees
    expect(
      (await call(`${api.url}/v1/platforms/retell`, 'POST', { ...json, 'x-retell-signature': stale }, RETELL)).status,
    ).toBe(401);
    const recent = Date.now() - 60_000;
    const fresh = `v=${recent},d=${hex(RETELL_KEY, RETELL + recent)}`;
    expect(await retellVerify(RETELL, RETELL_KEY, fresh)).toBe(true);
    expect((await call(`${api.url}/v1/platforms/retell`, 'POST', json, RETELL)).status).toBe(401);
    expect((await keysWithPrefix(client, prefix)).sort()).toEqual(before);
  });

  it('ElevenLabs: our check accepts and refuses exactly what the SDK constructEvent does', async () => {
    const sdk = new ElevenLabsClient({ apiKey: 'unused' });
    const config = loadHttpConfig(apiEnv(prefix, { ELEVENLABS_WEBHOOK_SECRET: ELEVENLABS_SECRET }));
    const seconds = Math.floor(Date.now() / 1000);
    const cases: [string, string, string][] = [
      ['valid', ELEVENLABS, elevenLabsHeader(ELEVENLABS)],
      ['wrong secret', ELEVENLABS, elevenLabsHeader(ELEVENLABS, `${ELEVENLABS_SECRET}x`)],
      ['tampered body', ELEVENLABS.replace('TCK-88812', 'TCK-88813'), elevenLabsHeader(ELEVENLABS)],
      ['31 minutes old', ELEVENLABS, elevenLabsHeader(ELEVENLABS, ELEVENLABS_SECRET, seconds - 31 * 60)],
      ['29 minutes old', ELEVENLABS, elevenLabsHeader(ELEVENLABS, ELEVENLABS_SECRET, seconds - 29 * 60)],
      ['no v0', ELEVENLABS, `t=${seconds}`],
      [
        'upper-case hex',
        ELEVENLABS,
        elevenLabsHeader(ELEVENLABS).toUpperCase().replace('T=', 't=').replace('V0=', 'v0='),
      ],
      ['v0 first', ELEVENLABS, elevenLabsHeader(ELEVENLABS).split(',').reverse().join(',')],
    ];
    for (const [what, body, header] of cases) {
      const ours = elevenlabs.verify(
        { headers: { 'elevenlabs-signature': header }, body: Buffer.from(body) },
        config,
        Date.now(),
      ).ok;
      const theirs = await sdk.webhooks.constructEvent(body, header, ELEVENLABS_SECRET).then(
        () => true,
        () => false,
      );
      expect(ours, what).toBe(theirs);
      const answer = await postElevenLabs(body, header);
      expect(answer.status, what).toBe(ours ? 202 : 401);
    }
  });

  it('Vapi HMAC: hex HMAC-SHA256 of {timestamp}.{body} in the configured headers', async () => {
    now = Date.parse(JSON.parse(VAPI).message.endedAt) + 60_000;
    const stamp = String(Date.now());
    const good = { 'x-acme-sig': hex(VAPI_HMAC, `${stamp}.${VAPI}`), 'x-acme-time': stamp };
    expect((await postVapi(VAPI, good, hmacApi)).status).toBe(202);
    expect((await postVapi(VAPI, { ...good, 'x-acme-sig': `sha256=${good['x-acme-sig']}` }, hmacApi)).status).toBe(202);
    expect((await postVapi(VAPI.replace('high', 'low'), good, hmacApi)).status).toBe(401);
    expect(
      (await postVapi(VAPI, { ...good, 'x-acme-sig': hex(`${VAPI_HMAC}x`, `${stamp}.${VAPI}`) }, hmacApi)).status,
    ).toBe(401);
    const old = String(Date.now() - 6 * 60_000);
    expect(
      (await postVapi(VAPI, { 'x-acme-sig': hex(VAPI_HMAC, `${old}.${VAPI}`), 'x-acme-time': old }, hmacApi)).status,
    ).toBe(401);
    // The default header names are not the configured ones.
    expect((await postVapi(VAPI, { 'x-signature': good['x-acme-sig'], 'x-timestamp': stamp }, hmacApi)).status).toBe(
      401,
    );
    // The shared-secret credential is not configured on this server.
    expect((await postVapi(VAPI, { 'x-vapi-secret': VAPI_SECRET }, hmacApi)).status).toBe(401);
    expect((await postVapi(VAPI, { 'x-vapi-secret': 'wrong' })).status).toBe(401);
    expect((await postVapi(VAPI, { authorization: `Bearer ${VAPI_SECRET}x` })).status).toBe(401);
  });

  it('a platform without its secret configured answers 404', async () => {
    for (const name of ['vapi', 'retell', 'elevenlabs']) {
      const answer = await call(`${bare.url}/v1/platforms/${name}`, 'POST', json, '{}');
      expect(answer.status, name).toBe(404);
      expect(answer.body.error).toBe('not_found');
    }
  });
});

describe('events the receiver does not map', () => {
  it('answers 200 { ignored } to any other event', async () => {
    const started = JSON.stringify({ event: 'call_started', call: { call_id: 'x1' } });
    expect(await postRetell(started)).toMatchObject({ status: 200, body: { ignored: 'call_started' } });
    const update = JSON.stringify({ message: { type: 'status-update', status: 'in-progress' } });
    expect(await postVapi(update)).toMatchObject({ status: 200, body: { ignored: 'status-update' } });
    const audio = JSON.stringify({ type: 'post_call_audio', data: { conversation_id: 'c1', full_audio: 'AAAA' } });
    expect(await postElevenLabs(audio)).toMatchObject({ status: 200, body: { ignored: 'post_call_audio' } });
  });

  it('keeps a verified event it cannot map, counts it, lists it, and replays it once the mapping is fixed', async () => {
    const payload = JSON.parse(RETELL);
    payload.call.call_id = 'call-unmapped-1';
    const data = payload.call.call_analysis.custom_analysis_data;
    data.appointment_time = data.booking_starts_at;
    delete data.booking_starts_at;
    const body = JSON.stringify(payload);
    now = payload.call.end_timestamp + 60_000;

    const answer = await postRetell(body);
    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ accepted: false, id: 'retell:call-unmapped-1' });
    expect(answer.body.reason).toMatch(
      /booking\.startsAt: required.*call\.call_analysis\.custom_analysis_data\.booking_starts_at/,
    );
    expect(await conversationStatus(client, prefix, 'retell:call-unmapped-1')).toEqual([]);
    // A repeat delivery is the same entry, delivered twice.
    await postRetell(body);
    const kept = await store().get('retell:call-unmapped-1');
    expect(kept).toMatchObject({ platform: 'retell', deliveries: 2, payload: body });
    expect(kept?.issues[0]?.path).toBe('booking.startsAt');

    const listed = await call(`${api.url}/v1/platforms/rejected?platform=retell`, 'GET', auth('read'));
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((item: { id: string }) => item.id)).toContain('retell:call-unmapped-1');
    const metrics = await call(`${api.url}/metrics`, 'GET');
    expect(metrics.body).toMatch(/aftercall_ingest_rejected_total\{platform="retell"\} [2-9]/);

    const env = { PATH: process.env.PATH ?? '', ...apiEnv(prefix) };
    const list = spawnSync(process.execPath, [BIN, 'ingest', 'rejected', 'list', '--json'], { env, encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).map((item: { id: string }) => item.id)).toContain('retell:call-unmapped-1');

    // Still unmappable with the default mapping: a dry run says so and keeps it.
    const dry = await call(
      `${api.url}/v1/platforms/rejected/replay`,
      'POST',
      { ...json, ...auth('admin') },
      JSON.stringify({ ids: ['retell:call-unmapped-1'], dryRun: true }),
    );
    expect(dry.body).toMatchObject({ dryRun: true, replayed: [], rejected: [{ id: 'retell:call-unmapped-1' }] });

    // Fix the mapping, replay from the CLI: enqueued, and no longer kept. The CLI's
    // producer runs on the real clock, so the booking is moved into the future first.
    const mappingFile = join(scratch, 'mapping.yaml');
    writeFileSync(mappingFile, 'retell:\n  booking_starts_at: appointment_time\n');
    const future = JSON.parse(body);
    future.call.end_timestamp = Date.now() - 60_000;
    future.call.call_analysis.custom_analysis_data.appointment_time = new Date(
      Date.now() + 3 * 86_400_000,
    ).toISOString();
    await store().add({
      id: 'retell:call-unmapped-1',
      platform: 'retell',
      reason: 'x',
      issues: [],
      payload: JSON.stringify(future),
      now: Date.now(),
    });
    const replay = spawnSync(process.execPath, [BIN, 'ingest', 'rejected', 'replay', '--all'], {
      env: { ...env, PLATFORM_MAPPING_FILE: mappingFile },
      encoding: 'utf8',
    });
    expect(replay.status, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/replayed [1-9]\d* of/);
    expect(await store().get('retell:call-unmapped-1')).toBeUndefined();
    const status = await conversationStatus(client, prefix, 'retell:call-unmapped-1');
    expect(status.map((task) => task.type)).toContain('schedule_reminder');
  });

  it('keeps a malformed phone number, an unknown outcome, a missing call id and a body that is not JSON', async () => {
    const vapi = JSON.parse(VAPI);
    vapi.message.call.id = 'vapi-bad-phone';
    delete vapi.message.analysis.structuredData.customer_id;
    vapi.message.customer.number = '555-0123';
    const phone = await postVapi(JSON.stringify(vapi));
    expect(phone.body).toMatchObject({ accepted: false, id: 'vapi:vapi-bad-phone' });
    expect(phone.body.reason).toMatch(/customer\.phone: expected a phone number in E\.164 form/);
    expect(phone.body.reason).not.toContain('555-0123');

    const eleven = JSON.parse(ELEVENLABS);
    eleven.data.conversation_id = 'conv-unknown-outcome';
    eleven.data.analysis.data_collection_results.outcome.value = 'refund_issued';
    const unknown = await postElevenLabs(JSON.stringify(eleven));
    expect(unknown.body).toMatchObject({ accepted: false, id: 'elevenlabs:conv-unknown-outcome' });
    expect(unknown.body.reason).toMatch(/^outcome: expected one of booked/);

    const noId = JSON.parse(RETELL);
    delete noId.call.call_id;
    const missing = await postRetell(JSON.stringify(noId));
    expect(missing.body).toMatchObject({ accepted: false, id: expect.stringMatching(/^retell:sha256-[0-9a-f]{32}$/) });
    expect(missing.body.reason).toMatch(/conversationId: required/);

    const notJson = await postRetell('this is not json');
    expect(notJson.status).toBe(202);
    expect(notJson.body.accepted).toBe(false);
    for (const id of ['vapi:vapi-bad-phone', 'elevenlabs:conv-unknown-outcome', missing.body.id, notJson.body.id]) {
      expect(await store().get(id), id).toBeDefined();
    }
    // Purge through the API: dry run first, then for real.
    const purge = (dryRun: boolean) =>
      call(
        `${api.url}/v1/platforms/rejected/purge`,
        'POST',
        { ...json, ...auth('admin') },
        JSON.stringify({ ids: [notJson.body.id, 'nope'], dryRun }),
      );
    expect((await purge(true)).body).toEqual({ dryRun: true, purged: [notJson.body.id], missing: ['nope'] });
    expect(await store().get(notJson.body.id)).toBeDefined();
    expect((await purge(false)).body).toEqual({ dryRun: false, purged: [notJson.body.id], missing: ['nope'] });
    expect(await store().get(notJson.body.id)).toBeUndefined();
    expect((await call(`${api.url}/v1/platforms/rejected`, 'GET', auth('ingest'))).status).toBe(403);
  });
});
