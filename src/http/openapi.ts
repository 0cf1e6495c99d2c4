/**
 * The OpenAPI 3.1 document: what @fastify/swagger gathers from the routes' zod schemas,
 * finished here in one place:
 *   - the outcome schema is the contract's own JSON Schema (conversationOutcomeJsonSchema),
 *     which keeps the rules zod's refinements cannot express (booking required when the
 *     outcome is booked, ...), its $defs moved to components;
 *   - keys are sorted, so the committed schema/openapi.json diffs cleanly.
 * `npm run schema` writes it to schema/openapi.json; a test fails when that file is stale.
 */
import { conversationOutcomeJsonSchema } from '../contract/conversation-outcome.js';

type Json = Record<string, unknown>;

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value as Json)
      .sort()
      .map((key) => [key, sortKeys((value as Json)[key])]),
  );
}

/** Rewrites `#/$defs/<name>` references to `#/components/schemas/<prefix><name>`. */
function moveRefs(value: unknown, prefix: string): unknown {
  if (Array.isArray(value)) return value.map((item) => moveRefs(item, prefix));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Json).map(([key, item]) => [
      key,
      key === '$ref' && typeof item === 'string' && item.startsWith('#/$defs/')
        ? `#/components/schemas/${prefix}${item.slice('#/$defs/'.length)}`
        : moveRefs(item, prefix),
    ]),
  );
}

const REF = '#/components/schemas/';

/** Rewrites component references by `rename` (old name -> new name). */
function renameRefs(value: unknown, rename: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((item) => renameRefs(item, rename));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Json).map(([key, item]) => {
      if (key === '$ref' && typeof item === 'string' && item.startsWith(REF)) {
        const name = item.slice(REF.length);
        return [key, `${REF}${rename.get(name) ?? name}`];
      }
      return [key, renameRefs(item, rename)];
    }),
  );
}

/**
 * The zod provider lists each schema twice, as read (`XInput`) and as written (`X`); ours
 * have no transforms, so the two are the same: keep one. (Should one ever differ, both stay.)
 */
function mergeInputSchemas(document: Json): Json {
  const schemas = ((document.components as Json | undefined)?.schemas ?? {}) as Json;
  const allInputs = new Map(
    Object.keys(schemas)
      .filter((name) => name.endsWith('Input') && Object.hasOwn(schemas, name.slice(0, -'Input'.length)))
      .map((name) => [name, name.slice(0, -'Input'.length)]),
  );
  // The written form adds `additionalProperties: false` to plain objects; the read form,
  // which allows later additions, is the one kept.
  const loose = (value: unknown) =>
    JSON.stringify(sortKeys(renameRefs(value, allInputs)), (key, item) =>
      key === 'additionalProperties' && item === false ? undefined : item,
    );
  const rename = new Map([...allInputs].filter(([input, base]) => loose(schemas[input]) === loose(schemas[base])));
  const kept = Object.fromEntries(
    Object.entries(schemas)
      .filter(([name]) => !rename.has(name))
      .map(([name, schema]) => [name, rename.has(`${name}Input`) ? schemas[`${name}Input`] : schema]),
  );
  return renameRefs({ ...document, components: { ...(document.components as Json), schemas: kept } }, rename) as Json;
}

export function finishDocument(input: Json): Json {
  const document = mergeInputSchemas(input);
  const components = (document.components ?? {}) as Json;
  const schemas = { ...((components.schemas ?? {}) as Json) };
  const { $schema, $id, $defs, ...outcome } = conversationOutcomeJsonSchema() as Json & { $defs?: Json };
  void $schema;
  void $id;
  schemas.ConversationOutcome = moveRefs(outcome, 'ConversationOutcome_');
  for (const [name, schema] of Object.entries($defs ?? {})) {
    schemas[`ConversationOutcome_${name}`] = moveRefs(schema, 'ConversationOutcome_');
  }
  return sortKeys({ ...document, components: { ...components, schemas } }) as Json;
}
