/**
 * The HTTP API's configuration: its variables are validated with messages that name the
 * variable (and never echo a token), the mapping file is checked field by field, and every
 * variable is documented in the README and listed by `aftercall config`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { ConfigError } from '../src/contract/validation-error.js';
import { httpVariableDocs, loadHttpConfig, parseByteSize } from '../src/http/environment.js';
import { loadMapping } from '../src/http/platforms/mapping.js';

const scratch = mkdtempSync(join(tmpdir(), 'aftercall-http-config-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const issuesOf = (env: Record<string, string>) => {
  try {
    loadHttpConfig(env);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
};

describe('HTTP variables', () => {
  it('have defaults: port 8080, 64kb bodies, no keys, no_action for calls without an outcome', () => {
    const config = loadHttpConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      bodyLimitBytes: 65_536,
      apiKeys: [],
      defaultOutcome: 'no_action',
    });
    expect(config.vapi).toEqual({ signatureHeader: 'x-signature', timestampHeader: 'x-timestamp' });
    expect(parseByteSize('1mb')).toBe(1_048_576);
    expect(parseByteSize('512')).toBe(512);
    expect(parseByteSize('lots')).toBeUndefined();
  });

  it('reads role:token pairs and refuses bad ones naming the pair, never the token', () => {
    const keys = loadHttpConfig({ API_KEYS: ' ingest:aaaaaaaaaaaaaaaa1 , admin:bbbbbbbbbbbbbbbb2,' }).apiKeys;
    expect(keys).toEqual([
      { role: 'ingest', token: 'aaaaaaaaaaaaaaaa1' },
      { role: 'admin', token: 'bbbbbbbbbbbbbbbb2' },
    ]);
    const badRole = issuesOf({ API_KEYS: 'ingest:aaaaaaaaaaaaaaaa1,root:secret-token-value-xyz' });
    expect(badRole).toEqual([
      { path: 'API_KEYS', message: 'pair 2: expected role:token with a role of ingest, read, admin' },
    ]);
    const short = issuesOf({ API_KEYS: 'read:tiny-secret' });
    expect(short[0]?.message).toMatch(/pair 1: expected a token of at least 16 characters/);
    expect(JSON.stringify([badRole, short])).not.toMatch(/secret-token-value|tiny-secret/);
  });

  it('names each bad variable', () => {
    const issues = issuesOf({
      HTTP_PORT: '70000',
      HTTP_BODY_LIMIT: '10gb',
      VAPI_HMAC_SIGNATURE_HEADER: 'x signature',
      PLATFORM_DEFAULT_OUTCOME: 'maybe',
    });
    expect(issues.map((issue) => issue.path).sort()).toEqual([
      'HTTP_BODY_LIMIT',
      'HTTP_PORT',
      'PLATFORM_DEFAULT_OUTCOME',
      'VAPI_HMAC_SIGNATURE_HEADER',
    ]);
  });
});

describe('mapping file', () => {
  const file = (name: string, text: string) => {
    const path = join(scratch, name);
    writeFileSync(path, text);
    return path;
  };

  it('renames fields per platform, from YAML or JSON; the others keep their default names', () => {
    const yaml = loadMapping(
      file('m.yaml', 'retell:\n  outcome: call_outcome\nvapi:\n  customer_email: email\n'),
      'resolved',
    );
    expect(yaml.fields.retell.outcome).toBe('call_outcome');
    expect(yaml.fields.retell.booking_id).toBe('booking_id');
    expect(yaml.fields.vapi.customer_email).toBe('email');
    expect(yaml.fields.elevenlabs.outcome).toBe('outcome');
    expect(yaml.defaultOutcome).toBe('resolved');
    const json = loadMapping(file('m.json', '{"elevenlabs":{"ticket_id":"case_number"}}'), 'no_action');
    expect(json.fields.elevenlabs.ticket_id).toBe('case_number');
  });

  it('refuses what it cannot use, naming the file and the entry', () => {
    const refused = (name: string, text: string) => {
      try {
        loadMapping(file(name, text), 'no_action');
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).message;
      }
      return 'accepted';
    };
    expect(refused('a.yaml', 'twilio:\n  outcome: x\n')).toMatch(
      /PLATFORM_MAPPING_FILE: .*a\.yaml: twilio: expected a platform/,
    );
    expect(refused('b.yaml', 'retell:\n  outcom: x\n')).toMatch(/retell\.outcom: expected one of outcome, customer_id/);
    expect(refused('c.yaml', 'retell:\n  outcome: 3\n')).toMatch(/retell\.outcome: expected a field name/);
    expect(refused('d.json', '{"retell":')).toMatch(/cannot read it as JSON/);
    expect(refused('e.yaml', '- a\n- b\n')).toMatch(/expected an object with a section per platform/);
    expect(() => loadMapping(join(scratch, 'missing.yaml'), 'no_action')).toThrow(/cannot read it as YAML/);
  });
});

describe('documentation', () => {
  it('the README documents every HTTP variable, and aftercall config lists them', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const stdout = new PassThrough();
    let printed = '';
    stdout.on('data', (chunk) => {
      printed += chunk;
    });
    const code = await main(['config'], { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env: {} });
    expect(code).toBe(0);
    for (const name of Object.keys(httpVariableDocs)) {
      expect(readme, name).toContain(name);
      expect(printed, name).toContain(name);
    }
  });
});
