/**
 * An unreachable REDIS_URL is said once when it goes down and once when it is back,
 * not at every retry (ioredis retries several times a second). The Redis client is
 * the collector's own (createRedisClient), on a loopback port where nothing listens;
 * then a real redis-server comes up on that port and goes away again.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisClient } from '../../collector/src/http/rateLimit.ts';
import { freePort } from '../helpers/net.ts';

/** A guard against a hang, not a measure: ioredis backs off up to 2 s between retries. */
const HANG_GUARD_MS = 60_000;
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger whose lines land in `lines`, parsed. */
function capturingLogger(lines: Line[]) {
  return pino({ level: 'info', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
}

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + HANG_GUARD_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const clients: Redis[] = [];
const servers: ChildProcess[] = [];
afterAll(() => {
  for (const client of clients) client.disconnect();
  for (const server of servers) server.kill('SIGKILL');
});

describe('REDIS_URL unreachable', () => {
  it(
    'logs one "unreachable" line over many retries, one "reachable again" when it is back, and one more when it goes again',
    async () => {
      const port = await freePort();
      const lines: Line[] = [];
      const redis = createRedisClient(`redis://:hunter2-redis@127.0.0.1:${port}`, capturingLogger(lines));
      clients.push(redis);
      let retries = 0;
      redis.on('reconnecting', () => retries++);
      const said = (prefix: string) => lines.filter((line) => line.msg.startsWith(prefix));

      await until('ten retries', () => retries >= 10);
      expect(said('redis unreachable')).toEqual([
        {
          level: 40,
          time: expect.any(Number),
          redis: `127.0.0.1:${port}`,
          reason: 'ECONNREFUSED',
          msg: 'redis unreachable; rate limits fall back to memory (per process) until it is back',
        },
      ]);
      expect(lines).toHaveLength(1);
      // No stack, no password.
      expect(JSON.stringify(lines)).not.toMatch(/\n\s+at |hunter2/);

      if (!hasRedisServer) return;
      const server = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', 'hunter2-redis', '--save', '', '--appendonly', 'no'],
        {
          stdio: 'ignore',
        },
      );
      servers.push(server);
      await until('Redis to be back', () => said('redis reachable again').length > 0);
      expect(said('redis reachable again')).toEqual([
        { level: 30, time: expect.any(Number), redis: `127.0.0.1:${port}`, msg: 'redis reachable again; rate limits are shared again' },
      ]);
      expect(await redis.ping()).toBe('PONG');

      server.kill('SIGKILL');
      const before = retries;
      await until('ten more retries', () => retries >= before + 10);
      expect(said('redis unreachable')).toHaveLength(2);
      expect(said('redis reachable again')).toHaveLength(1);
      expect(lines).toHaveLength(3);
    },
    HANG_GUARD_MS * 3,
  );
});
