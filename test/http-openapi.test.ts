/**
 * The OpenAPI 3.1 document: the committed schema/openapi.json is what the code generates
 * (`npm run schema`), it is served at /v1/openapi.json, it is a valid OpenAPI 3.1 document
 * (the official schema), and real answers of the running API match the schemas it
 * documents for their route and status.
 */
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { sign as retellSign } from 'retell-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/http/server.js';
import { auth, call, postJson, startApi, type TestApi } from './helpers/api-server.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { redis, removePrefix, uniquePrefix } from './helpers/redis.js';

const committed = JSON.parse(readFileSync(new URL('../schema/openapi.json', import.meta.url), 'utf8'));
const client = redis();
const prefix = uniquePrefix('openapi');
const RETELL_KEY = 'key_retell_openapi_0123456789';
let api: TestApi;

beforeAll(async () => {
  api = await startApi(prefix, { RETELL_API_KEY: RETELL_KEY });
});
afterAll(async () => {
  await api?.close();
  await removePrefix(client, prefix);
  client.disconnect();
});

describe('schema/openapi.json', () => {
  it('is what the code generates (run `npm run schema` after changing a route)', async () => {
    expect(await openApiDocument()).toEqual(committed);
  });

  it('is served at /v1/openapi.json', async () => {
    const answer = await call(`${api.url}/v1/openapi.json`, 'GET');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual(committed);
  });

  it('is a valid OpenAPI 3.1 document whose every reference resolves', async () => {
    expect(committed.openapi).toBe('3.1.0');
    const result = await new Validator().validate(structuredClone(committed));
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
    // A broken document is refused: the check can fail.
    const broken = structuredClone(committed);
    broken.paths['/v1/outcomes'].post.responses['202'] = { content: {} };
    expect((await new Validator().validate(broken)).valid).toBe(false);
    const refs = JSON.stringify(committed).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of new Set(refs)) {
      const name = /#\/components\/schemas\/([^"]+)"/.exec(ref)?.[1];
      expect(name && committed.components.schemas[name], ref).toBeTruthy();
    }
    for (const [path, methods] of Object.entries(
      committed.paths as Record<string, Record<string, { security?: unknown }>>,
    )) {
      for (const [method, operation] of Object.entries(methods)) {
        const guarded = !path.startsWith('/v1/platforms/') || path.startsWith('/v1/platforms/rejected');
        if (path.startsWith('/v1/') && guarded)
          expect(operation.security, `${method} ${path}`).toEqual([{ bearerAuth: [] }]);
      }
    }
  });
});

describe('answers of the running API match the documented schemas', () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats.default(ajv);
  const DOC = 'https://aftercall.dev/openapi.json';
  ajv.addSchema({ ...committed, $id: DOC });
  const pointer = (...parts: string[]) =>
    parts.map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

  function check(path: string, method: string, answer: { status: number; body: unknown }) {
    const ref = `${DOC}#/${pointer('paths', path, method, 'responses', String(answer.status), 'content', 'application/json', 'schema')}`;
    const documented = committed.paths[path]?.[method]?.responses?.[String(answer.status)];
    expect(documented, `${method} ${path} ${answer.status} is documented`).toBeDefined();
    const validate = ajv.compile({ $ref: ref });
    expect(validate(answer.body), `${method} ${path} ${answer.status}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  }

  it('refuses an answer that does not match (the check can fail)', () => {
    const ref = `${DOC}#/${pointer('paths', '/v1/outcomes', 'post', 'responses', '202', 'content', 'application/json', 'schema')}`;
    const validate = ajv.compile({ $ref: ref });
    expect(validate({ conversationId: 1, tasks: [], skipped: [] })).toBe(false);
    expect(validate({ conversationId: 'c', tasks: [{ type: 'fax' }], skipped: [] })).toBe(false);
    expect(validate({ conversationId: 'c', tasks: [], skipped: [] })).toBe(true);
  });

  it('for outcomes, status, dead letters, platforms and operations', async () => {
    const u = (path: string) => `${api.url}${path}`;
    check('/v1/outcomes', 'post', await postJson(u('/v1/outcomes'), auth('ingest'), bookedOutcome('doc-1')));
    check('/v1/outcomes', 'post', await postJson(u('/v1/outcomes'), auth('ingest'), { conversationId: 'x' }));
    check('/v1/outcomes', 'post', await postJson(u('/v1/outcomes'), {}, {}));
    check('/v1/outcomes', 'post', await postJson(u('/v1/outcomes'), auth('read'), {}));
    check(
      '/v1/outcomes',
      'post',
      await call(u('/v1/outcomes'), 'POST', { ...auth('ingest'), 'content-type': 'application/json' }, '{'),
    );
    check('/v1/outcomes', 'post', await postJson(u('/v1/outcomes'), auth('ingest'), [resolvedOutcome('doc-2'), {}]));
    check(
      '/v1/outcomes',
      'post',
      await postJson(
        u('/v1/outcomes'),
        auth('ingest'),
        resolvedOutcome('doc-3', Date.now(), { summary: 'x'.repeat(70_000) }),
      ),
    );
    check(
      '/v1/conversations/{conversationId}/tasks',
      'get',
      await call(u('/v1/conversations/doc-1/tasks'), 'GET', auth('read')),
    );
    await postJson(u('/v1/outcomes'), auth('ingest'), resolvedOutcome('doc-old', Date.now() - 2 * 86_400_000));
    check('/v1/dead-letters', 'get', await call(u('/v1/dead-letters?limit=1'), 'GET', auth('read')));
    check('/v1/dead-letters', 'get', await call(u('/v1/dead-letters?limit=-1'), 'GET', auth('read')));
    check(
      '/v1/dead-letters/replay',
      'post',
      await postJson(u('/v1/dead-letters/replay'), auth('admin'), { type: 'update_crm', all: true, extend: '1h' }),
    );
    check(
      '/v1/dead-letters/purge',
      'post',
      await postJson(u('/v1/dead-letters/purge'), auth('admin'), { type: 'update_crm', jobId: 'x', dryRun: true }),
    );
    const event = JSON.stringify({
      event: 'call_analyzed',
      call: {
        call_id: 'doc-call',
        end_timestamp: Date.now(),
        from_number: '+14155550100',
        direction: 'inbound',
        call_analysis: { custom_analysis_data: { outcome: 'resolved', ticket_id: 'T-9' } },
      },
    });
    const signed = async (body: string) => ({
      'content-type': 'application/json',
      'x-retell-signature': await retellSign(body, RETELL_KEY),
    });
    check('/v1/platforms/retell', 'post', await call(u('/v1/platforms/retell'), 'POST', await signed(event), event));
    const unmappable = event.replace('resolved', 'teleported');
    check(
      '/v1/platforms/retell',
      'post',
      await call(u('/v1/platforms/retell'), 'POST', await signed(unmappable), unmappable),
    );
    const other = JSON.stringify({ event: 'call_started', call: {} });
    check('/v1/platforms/retell', 'post', await call(u('/v1/platforms/retell'), 'POST', await signed(other), other));
    check(
      '/v1/platforms/retell',
      'post',
      await call(u('/v1/platforms/retell'), 'POST', { 'content-type': 'application/json' }, event),
    );
    check(
      '/v1/platforms/vapi',
      'post',
      await call(u('/v1/platforms/vapi'), 'POST', { 'content-type': 'application/json' }, '{}'),
    );
    check('/v1/platforms/rejected', 'get', await call(u('/v1/platforms/rejected'), 'GET', auth('read')));
    check(
      '/v1/platforms/rejected/replay',
      'post',
      await postJson(u('/v1/platforms/rejected/replay'), auth('admin'), { all: true, dryRun: true }),
    );
    check(
      '/v1/platforms/rejected/purge',
      'post',
      await postJson(u('/v1/platforms/rejected/purge'), auth('admin'), { ids: ['nope'] }),
    );
    check('/healthz', 'get', await call(u('/healthz'), 'GET'));
    check('/readyz', 'get', await call(u('/readyz'), 'GET'));
  });
});
