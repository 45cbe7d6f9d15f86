import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../collector/src/config.ts';

/** Returns the ConfigError that loading `env` throws; fails when it throws anything else or nothing. */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  // toMatchObject: later work adds settings of its own; these are the documented ones.
  it('applies the documented defaults to an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8787,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: './data',
      adminToken: undefined,
      redisUrl: undefined,
      logLevel: 'info',
      trustProxy: false,
      ipHashSecret: undefined,
      publicUrl: 'http://localhost:8787',
      demo: 'auto',
    });
    for (const unset of ['databaseUrl', 'adminToken', 'redisUrl', 'ipHashSecret'] as const) expect(config[unset], unset).toBeUndefined();
  });

  it('WORKERS above 1 needs DATABASE_URL (PGlite serves one process)', () => {
    expect(loadConfig({})).toMatchObject({ workers: 1 });
    expect(loadConfig({ WORKERS: '2', DATABASE_URL: 'postgres://u@h/db' })).toMatchObject({ workers: 2 });
    expect(configError({ WORKERS: '2' }).problems).toEqual([expect.stringMatching(/^WORKERS: .*DATABASE_URL/)]);
    expect(configError({ WORKERS: '0', DATABASE_URL: 'postgres://u@h/db' }).problems).toEqual([expect.stringMatching(/^WORKERS: /)]);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '', ADMIN_TOKEN: '', LOG_LEVEL: '', DATA_DIR: '' })).toMatchObject({
      port: 8787,
      databaseUrl: undefined,
      adminToken: undefined,
      logLevel: 'info',
      dataDir: './data',
    });
  });

  it('reads and coerces every variable', () => {
    const config = loadConfig({
      PORT: '3000',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://user:pw@db.internal:5432/referrals',
      DATA_DIR: '/var/lib/referral',
      ADMIN_TOKEN: 'a-very-long-admin-token',
      REDIS_URL: 'redis://cache:6379',
      LOG_LEVEL: 'warn',
      TRUST_PROXY: 'true',
      IP_HASH_SECRET: 'sixteen-chars-or-more',
      PUBLIC_URL: 'https://ref.example.com/',
      DEMO: 'off',
    });
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      databaseUrl: 'postgres://user:pw@db.internal:5432/referrals',
      dataDir: '/var/lib/referral',
      adminToken: 'a-very-long-admin-token',
      redisUrl: 'redis://cache:6379',
      logLevel: 'warn',
      trustProxy: true,
      ipHashSecret: 'sixteen-chars-or-more',
      publicUrl: 'https://ref.example.com',
      demo: 'off',
    });
    expect(typeof config.port).toBe('number');
  });

  it('accepts postgresql:// and rediss:// too', () => {
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/x', REDIS_URL: 'rediss://cache:6380' })).toMatchObject({
      databaseUrl: 'postgresql://db/x',
      redisUrl: 'rediss://cache:6380',
    });
  });

  it.each([
    ['1', true],
    ['true', true],
    ['yes', true],
    ['0', false],
    ['false', false],
    ['no', false],
  ])('reads TRUST_PROXY=%s as %s', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toBe(expected);
  });

  it('derives the public URL from PORT and strips trailing slashes from PUBLIC_URL', () => {
    expect(loadConfig({ PORT: '9000' }).publicUrl).toBe('http://localhost:9000');
    expect(loadConfig({ PUBLIC_URL: 'https://r.example///' }).publicUrl).toBe('https://r.example');
    expect(loadConfig({ PUBLIC_URL: 'https://r.example/base/' }).publicUrl).toBe('https://r.example/base');
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ HOME: '/root', PATH: '/usr/bin', NODE_ENV: 'test' })).toEqual(loadConfig({}));
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://db/x'],
    ['DATABASE_URL', 'not a url'],
    ['REDIS_URL', 'http://cache'],
    ['ADMIN_TOKEN', 'short'],
    ['IP_HASH_SECRET', 'short'],
    ['PUBLIC_URL', 'ftp://files.example'],
    ['TRUST_PROXY', 'maybe'],
    ['DEMO', 'always'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(new RegExp(`^${name}: \\S`));
    expect(error.message).toContain(name);
  });

  it('lists every problem in one ConfigError', () => {
    const error = configError({
      PORT: 'abc',
      LOG_LEVEL: 'loud',
      DATABASE_URL: 'mysql://db/x',
      ADMIN_TOKEN: 'short',
      REDIS_URL: 'http://cache',
    });
    expect(error.problems.map((problem) => problem.split(':')[0]).sort()).toEqual([
      'ADMIN_TOKEN',
      'DATABASE_URL',
      'LOG_LEVEL',
      'PORT',
      'REDIS_URL',
    ]);
    expect(error.problems).toContain('DATABASE_URL: must be a postgres:// URL');
    expect(error.problems).toContain('ADMIN_TOKEN: must be at least 16 characters');
    expect(error.problems).toContain('REDIS_URL: must be a redis:// URL');
    expect(error.message.split('\n')[0]).toBe('Invalid configuration:');
    for (const problem of error.problems) expect(error.message).toContain(`  - ${problem}`);
  });

  it.each(['auto', 'on', 'off'])('accepts DEMO=%s', (value) => {
    expect(loadConfig({ DEMO: value }).demo).toBe(value);
  });

  it('bounds slow clients by default: 10 s for headers, 30 s for a whole request, 5 s keep-alive', () => {
    expect(loadConfig({}).http).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 });
    expect(
      loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '2000', HTTP_REQUEST_TIMEOUT_MS: '4000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000' }).http,
    ).toEqual({
      headersTimeoutMs: 2000,
      requestTimeoutMs: 4000,
      keepAliveTimeoutMs: 65_000,
    });
  });

  it.each([
    ['HTTP_HEADERS_TIMEOUT_MS', 'soon'],
    ['HTTP_HEADERS_TIMEOUT_MS', '0'],
    ['HTTP_HEADERS_TIMEOUT_MS', '1.5'],
    ['HTTP_REQUEST_TIMEOUT_MS', '-1'],
    ['HTTP_KEEP_ALIVE_TIMEOUT_MS', 'forever'],
  ])('refuses %s=%s', (name, value) => {
    expect(configError({ [name]: value }).problems).toEqual([expect.stringMatching(new RegExp(`^${name}: \\S`))]);
  });

  it('refuses a headers timeout longer than the request timeout (the headers are part of the request)', () => {
    expect(configError({ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' }).problems).toEqual([
      expect.stringMatching(/^HTTP_HEADERS_TIMEOUT_MS: .*HTTP_REQUEST_TIMEOUT_MS/),
    ]);
    expect(configError({ HTTP_HEADERS_TIMEOUT_MS: '40000' }).problems).toEqual([expect.stringMatching(/^HTTP_HEADERS_TIMEOUT_MS: /)]);
  });

  it('never echoes a secret it refuses', () => {
    const error = configError({ ADMIN_TOKEN: 'tiny-secret', IP_HASH_SECRET: 'hush' });
    expect(error.message).not.toContain('tiny-secret');
    expect(error.message).not.toContain('hush');
  });
});
