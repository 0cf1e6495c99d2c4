/**
 * vitest globalSetup of the `cluster` project: one real 3-master Redis Cluster for the whole
 * run (started from the machine's redis-server, see redis-topology.ts), handed to the test
 * files as `redisClusterNodes`; each file still uses its own key prefix.
 */
import type { TestProject } from 'vitest/node';
import { startCluster } from './redis-topology.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startCluster({ masters: 3 });
  project.provide('redisClusterNodes', cluster.urls);
  return () => cluster.stop();
}
