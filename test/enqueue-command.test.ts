/**
 * The enqueue script's command is encoded by aftercall (scripts.ts: encodeCommand, ScriptCommand)
 * rather than by ioredis: the bytes on the wire are the ones ioredis would write, a connection's
 * first call carries the script (EVAL, no NOSCRIPT round trip), and a server that lost the
 * script (a restart, a failover) gets it again without the call failing.
 */
import { Command, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer } from '../src/producer/producer.js';
import { encodeCommand } from '../src/redis/scripts.js';
import { bookedOutcome } from './helpers/outcomes.js';
import { startPrivateRedis, type PrivateRedis } from './helpers/redis-server.js';

describe('encodeCommand', () => {
  it('writes the bytes ioredis writes for the same command', () => {
    const cases: (string | Buffer)[][] = [
      [],
      ['a'],
      ['', Buffer.alloc(0), 'x'],
      ['{send_email}:wait', Buffer.from([0x93, 0xa1, 0x00, 0xff, 0x0d, 0x0a]), 'é ü 会話 🙂', Buffer.from('tail')],
      [Buffer.from('lead'), 'x'.repeat(70_000), Buffer.alloc(300, 7), '12345678901'],
    ];
    for (const args of cases) {
      const ioredis = new Command('evalsha', [...args]).toWritable({});
      expect(encodeCommand('evalsha', args)).toEqual(Buffer.isBuffer(ioredis) ? ioredis : Buffer.from(ioredis));
    }
  });
});

describe('the enqueue script on a connection', () => {
  let server: PrivateRedis;
  let admin: Redis;
  beforeAll(async () => {
    server = await startPrivateRedis();
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    admin.disconnect();
    await server.destroy();
  });

  const calls = async () => {
    const commands = await admin.info('commandstats');
    const count = (name: string) => Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(commands)?.[1] ?? 0);
    const noscript = Number(/^errorstat_NOSCRIPT:count=(\d+)/m.exec(await admin.info('errorstats'))?.[1] ?? 0);
    return { eval: count('eval'), evalsha: count('evalsha'), noscript };
  };

  it('sends the script with the first call, its sha after, and again to a server that lost it', async () => {
    const producer = createProducer({ redisUrl: server.url, prefix: 'enqueue-command' });
    try {
      const first = await producer.conversationEnded(bookedOutcome('first'));
      expect(first.tasks.every((task) => task.created)).toBe(true);
      expect(await calls()).toMatchObject({ eval: 1, evalsha: 0, noscript: 0 });

      const second = await producer.conversationEnded(bookedOutcome('second'));
      expect(second.tasks.every((task) => task.created)).toBe(true);
      expect(await calls()).toMatchObject({ eval: 1, evalsha: 1, noscript: 0 });

      await admin.script('FLUSH');
      const outcome = bookedOutcome('third');
      const third = await producer.conversationEnded(outcome);
      expect(third.tasks.every((task) => task.created)).toBe(true);
      expect(await calls()).toMatchObject({ eval: 2, evalsha: 2, noscript: 1 });

      const repeated = await producer.conversationEnded(outcome);
      expect(repeated.tasks.map((task) => task.created)).toEqual(third.tasks.map(() => false));
    } finally {
      await producer.close();
    }
  });
});
