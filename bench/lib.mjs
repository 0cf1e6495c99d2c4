// Shared by the benchmarks: statistics, the machine, Redis helpers, the report.
import { cpus, totalmem } from 'node:os';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function percentile(sorted, p) {
  if (!sorted.length) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1),
  };
}

/** Median and spread (min..max) of per-round values. */
export function acrossRounds(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), min: sorted[0], max: sorted.at(-1), rounds: values.length };
}

/** The order of the sides in round `round`: as given in even rounds, reversed in odd ones, so drift in the machine hits both alike. */
export function alternating(round, sides = ['ours', 'raw']) {
  return round % 2 === 0 ? sides : [...sides].reverse();
}

export function redis() {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

export async function machine() {
  const client = redis();
  const info = await client.info('server');
  client.disconnect();
  const cpu = cpus();
  return {
    cores: cpu.length,
    cpu: cpu[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    date: new Date().toISOString(),
  };
}

export async function removePrefix(client, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
    if (keys.length) await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

export const fmt = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
