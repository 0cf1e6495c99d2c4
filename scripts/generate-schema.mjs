// Regenerates schema/conversation-outcome.schema.json from the zod schema (npm run schema).
// A test fails when the committed file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { conversationOutcomeJsonSchema } from '../dist/src/index.js';

const target = new URL('../schema/conversation-outcome.schema.json', import.meta.url);
writeFileSync(target, `${JSON.stringify(conversationOutcomeJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target.pathname}`);
