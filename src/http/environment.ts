/**
 * The variables of `aftercall serve` (the HTTP API) and of the platform receivers, validated
 * by one zod schema like the rest of the configuration. A bad value names the variable and
 * what was expected. Only the server and `aftercall ingest` read them, so a worker never
 * fails on an API setting.
 *
 *   API_KEYS                  comma-separated role:token pairs; roles ingest, read, admin
 *   HTTP_PORT, HTTP_HOST      where the API listens (8080 on all interfaces)
 *   HTTP_BODY_LIMIT           largest request body (64kb)
 *   VAPI_WEBHOOK_SECRET       Vapi bearer / X-Vapi-Secret credential
 *   VAPI_HMAC_SECRET          Vapi HMAC credential, HMAC-SHA256 hex of `{timestamp}.{body}`
 *   VAPI_HMAC_SIGNATURE_HEADER, VAPI_HMAC_TIMESTAMP_HEADER   its header names
 *   RETELL_API_KEY            Retell's key, which signs its webhooks
 *   ELEVENLABS_WEBHOOK_SECRET ElevenLabs' post-call webhook secret
 *   PLATFORM_MAPPING_FILE     YAML or JSON renaming the extracted fields per platform
 *   PLATFORM_DEFAULT_OUTCOME  outcome of a call whose data names none (no_action)
 */
import { z } from 'zod';
import { OUTCOME_KINDS, type OutcomeKind } from '../contract/conversation-outcome.js';
import { ConfigError } from '../contract/validation-error.js';

export const API_ROLES = ['ingest', 'read', 'admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];

export interface ApiKey {
  role: ApiRole;
  token: string;
}

export interface HttpConfig {
  port: number;
  host: string;
  bodyLimitBytes: number;
  apiKeys: ApiKey[];
  vapi: { secret?: string; hmacSecret?: string; signatureHeader: string; timestampHeader: string };
  retell: { apiKey?: string };
  elevenlabs: { secret?: string };
  mappingFile?: string;
  defaultOutcome: OutcomeKind;
}

/** Tokens shorter than this are refused: a bearer token is the whole of the API's protection. */
export const MIN_TOKEN_LENGTH = 16;
export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_BODY_LIMIT = '64kb';

const SIZE = /^(\d+)\s*(b|kb|mb)?$/i;
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 };

/** `64kb`, `1mb`, `512b` or a number of bytes; undefined when the text is none of those. */
export function parseByteSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * SIZE_UNITS[(match[2] ?? 'b').toLowerCase()]!;
}

const optionalText = z
  .string()
  .optional()
  .transform((text) => text || undefined);

const headerName = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      if (/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(text)) return text.toLowerCase();
      ctx.addIssue({ code: 'custom', message: 'expected an HTTP header name, e.g. x-signature' });
      return z.NEVER;
    });

const apiKeys = z
  .string()
  .optional()
  .transform((text, ctx) => {
    const keys: ApiKey[] = [];
    for (const [index, pair] of (text ?? '').split(',').entries()) {
      const item = pair.trim();
      if (!item) continue;
      const colon = item.indexOf(':');
      const role = colon > 0 ? item.slice(0, colon) : '';
      const token = colon > 0 ? item.slice(colon + 1) : '';
      // The message names the pair by position, never by its text: it holds a token.
      if (!API_ROLES.includes(role as ApiRole)) {
        ctx.addIssue({
          code: 'custom',
          message: `pair ${index + 1}: expected role:token with a role of ${API_ROLES.join(', ')}`,
        });
        return z.NEVER;
      }
      if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
        ctx.addIssue({
          code: 'custom',
          message: `pair ${index + 1}: expected a token of at least ${MIN_TOKEN_LENGTH} characters without spaces`,
        });
        return z.NEVER;
      }
      keys.push({ role: role as ApiRole, token });
    }
    return keys;
  });

export const httpVariables = {
  API_KEYS: apiKeys,
  HTTP_PORT: z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return DEFAULT_HTTP_PORT;
      const port = Number(text);
      if (Number.isInteger(port) && port >= 0 && port <= 65_535) return port;
      ctx.addIssue({ code: 'custom', message: 'expected an integer from 0 to 65535' });
      return z.NEVER;
    }),
  HTTP_HOST: z
    .string()
    .optional()
    .transform((text) => text || '0.0.0.0'),
  HTTP_BODY_LIMIT: z
    .string()
    .optional()
    .transform((text, ctx) => {
      const bytes = parseByteSize(text || DEFAULT_BODY_LIMIT);
      if (bytes !== undefined && bytes >= 1024 && bytes <= 16 * 1024 * 1024) return bytes;
      ctx.addIssue({ code: 'custom', message: 'expected a size from 1kb to 16mb, such as 64kb or 1mb' });
      return z.NEVER;
    }),
  VAPI_WEBHOOK_SECRET: optionalText,
  VAPI_HMAC_SECRET: optionalText,
  VAPI_HMAC_SIGNATURE_HEADER: headerName('x-signature'),
  VAPI_HMAC_TIMESTAMP_HEADER: headerName('x-timestamp'),
  RETELL_API_KEY: optionalText,
  ELEVENLABS_WEBHOOK_SECRET: optionalText,
  PLATFORM_MAPPING_FILE: optionalText,
  PLATFORM_DEFAULT_OUTCOME: z
    .enum(OUTCOME_KINDS, { error: `expected one of ${OUTCOME_KINDS.join(', ')}` })
    .optional()
    .default('no_action'),
};

/** One line per variable, for `aftercall config` and the README. */
export const httpVariableDocs: Record<keyof typeof httpVariables, [string, string]> = {
  API_KEYS: ['(none)', 'comma-separated role:token pairs (roles ingest, read, admin); serve refuses to start without'],
  HTTP_PORT: [String(DEFAULT_HTTP_PORT), 'port of the HTTP API (aftercall serve)'],
  HTTP_HOST: ['0.0.0.0', 'interface the HTTP API listens on'],
  HTTP_BODY_LIMIT: [DEFAULT_BODY_LIMIT, 'largest request body the API accepts (413 above)'],
  VAPI_WEBHOOK_SECRET: ['(none)', 'Vapi credential sent as X-Vapi-Secret or Authorization: Bearer'],
  VAPI_HMAC_SECRET: ['(none)', 'Vapi HMAC credential: hex HMAC-SHA256 of {timestamp}.{body}'],
  VAPI_HMAC_SIGNATURE_HEADER: ['x-signature', "header of Vapi's HMAC signature"],
  VAPI_HMAC_TIMESTAMP_HEADER: ['x-timestamp', "header of Vapi's HMAC timestamp"],
  RETELL_API_KEY: ['(none)', 'Retell API key (the one with the webhook badge), which signs its webhooks'],
  ELEVENLABS_WEBHOOK_SECRET: ['(none)', "ElevenLabs post-call webhook's HMAC secret"],
  PLATFORM_MAPPING_FILE: ['(none)', "YAML or JSON file renaming the platforms' extracted fields"],
  PLATFORM_DEFAULT_OUTCOME: ['no_action', 'outcome of a platform call whose extracted data names none'],
};

/** Reads and validates the HTTP variables. Throws ConfigError naming each bad variable. */
export function loadHttpConfig(env: NodeJS.ProcessEnv = process.env): HttpConfig {
  const parsed = z.object(httpVariables).safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({ path: String(issue.path[0] ?? '(environment)'), message: issue.message })),
    );
  }
  const v = parsed.data;
  return {
    port: v.HTTP_PORT,
    host: v.HTTP_HOST,
    bodyLimitBytes: v.HTTP_BODY_LIMIT,
    apiKeys: v.API_KEYS,
    vapi: {
      ...(v.VAPI_WEBHOOK_SECRET && { secret: v.VAPI_WEBHOOK_SECRET }),
      ...(v.VAPI_HMAC_SECRET && { hmacSecret: v.VAPI_HMAC_SECRET }),
      signatureHeader: v.VAPI_HMAC_SIGNATURE_HEADER,
      timestampHeader: v.VAPI_HMAC_TIMESTAMP_HEADER,
    },
    retell: { ...(v.RETELL_API_KEY && { apiKey: v.RETELL_API_KEY }) },
    elevenlabs: { ...(v.ELEVENLABS_WEBHOOK_SECRET && { secret: v.ELEVENLABS_WEBHOOK_SECRET }) },
    ...(v.PLATFORM_MAPPING_FILE && { mappingFile: v.PLATFORM_MAPPING_FILE }),
    defaultOutcome: v.PLATFORM_DEFAULT_OUTCOME,
  };
}
