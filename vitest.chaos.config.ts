import { defineConfig } from 'vitest/config';

// `npm run chaos`: every reliability scenario at full size, one after the other
// (CHAOS_SCALE=full), then scripts/reliability-report.mjs writes docs/RELIABILITY.md.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    testTimeout: 45 * 60_000,
    hookTimeout: 5 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
