import { defineConfig } from 'vitest/config';

/**
 * The core suites, run a second time against a real 3-master Redis Cluster (the `cluster`
 * project; test/helpers/redis.ts switches their connections). Everything else runs once,
 * against standalone Redis at REDIS_URL.
 */
export const CLUSTER_SUITES = [
  'test/producer.test.ts',
  'test/worker.test.ts',
  'test/dead-letter-queue.test.ts',
  'test/expiry-sweeper.test.ts',
  'test/reminders.test.ts',
  'test/metrics.test.ts',
  'test/cli.test.ts',
  'test/reliability/duplicate-producers.test.ts',
  'test/platforms.test.ts',
  'test/console.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    // Each file uses its own Redis key prefix, so files may run side by side.
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: 'standalone', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'cluster',
          include: CLUSTER_SUITES,
          globalSetup: ['test/helpers/cluster-setup.ts'],
          env: { AFTERCALL_TEST_BACKEND: 'cluster' },
        },
      },
    ],
  },
});
