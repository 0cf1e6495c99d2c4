import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/environment.js';
import { WEBHOOK_SECRET } from './helpers/redis.js';

const errorOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
};

describe('configuration from the environment', () => {
  it('has safe defaults', () => {
    const config = loadConfig({});
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.prefix).toBe('aftercall');
    expect(config.dedupeWindowMs).toBe(24 * 3_600_000);
    expect(config.producerTimeoutMs).toBe(2_000);
    expect(config.worker.shutdownGraceMs).toBe(25_000);
    expect(config.retry).toEqual({ baseDelayMs: 2_000, maxDelayMs: 60_000, jitterMs: 1_000 });
    expect(config.sweeper).toMatchObject({ enabled: true, intervalMs: 15_000 });
    expect(config.delivery.timeoutMs).toBe(10_000);
  });

  it('accepts redis:// and rediss:// URLs with user and password, durations and per-type settings', () => {
    const config = loadConfig({
      REDIS_URL: 'rediss://app:s3cret@redis.internal:6380/2',
      DEDUPE_WINDOW: '12h',
      TASK_SEND_EMAIL_EXPIRES_AFTER: '45m',
      TASK_SCHEDULE_REMINDER_LEAD_TIME: '2d',
      TASK_FOLLOW_UP_SURVEY_ENABLED: 'false',
      TASK_UPDATE_CRM_ATTEMPTS: '7',
      WEBHOOK_SECRET,
    });
    expect(config.redisUrl).toBe('rediss://app:s3cret@redis.internal:6380/2');
    expect(config.dedupeWindowMs).toBe(12 * 3_600_000);
    expect(config.tasks.send_email?.settings?.expiresAfter).toBe(45 * 60_000);
    expect(config.tasks.schedule_reminder?.settings?.leadTime).toBe(48 * 3_600_000);
    expect(config.tasks.follow_up_survey?.enabled).toBe(false);
    expect(config.tasks.update_crm?.attempts).toBe(7);
  });

  it('names each bad variable and what was expected', () => {
    const issues = errorOf({
      REDIS_URL: 'http://localhost:6379',
      AFTERCALL_PREFIX: 'has{brace}',
      SHUTDOWN_GRACE: 'soon',
      WORKER_CONCURRENCY: '0',
      SWEEPER_ENABLED: 'maybe',
      WEBHOOK_SECRET: 'plain-secret',
      CRM_WEBHOOK_URL: 'ftp://crm',
      TASK_SEND_EMAIL_ATTEMPTS: '-1',
      LOG_LEVEL: 'loud',
    });
    const byVariable = Object.fromEntries(issues.map((issue) => [issue.path, issue.message]));
    expect(byVariable.REDIS_URL).toMatch(/redis:\/\/ or rediss:\/\//);
    expect(byVariable.AFTERCALL_PREFIX).toMatch(/no braces/);
    expect(byVariable.SHUTDOWN_GRACE).toMatch(/duration/);
    expect(byVariable.WORKER_CONCURRENCY).toMatch(/integer from 1/);
    expect(byVariable.SWEEPER_ENABLED).toMatch(/true or false/);
    expect(byVariable.WEBHOOK_SECRET).toMatch(/whsec_/);
    expect(byVariable.CRM_WEBHOOK_URL).toMatch(/http/);
    expect(byVariable.TASK_SEND_EMAIL_ATTEMPTS).toMatch(/integer from 1 to 100/);
    expect(byVariable.LOG_LEVEL).toMatch(/expected one of/);
  });
});
