// Regenerates schema/openapi.json, the HTTP API's OpenAPI 3.1 document, from the routes'
// zod schemas (npm run schema). A test fails when the committed file differs from this.
import { writeFileSync } from 'node:fs';
import { openApiDocument } from '../dist/src/http/server.js';

const target = new URL('../schema/openapi.json', import.meta.url);
writeFileSync(target, `${JSON.stringify(await openApiDocument(), null, 2)}\n`);
console.log(`wrote ${target.pathname}`);
