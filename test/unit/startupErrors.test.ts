/**
 * What a failed start says: the database URL's safe parts, one paragraph per cause,
 * the connect timeout setting, and the retry loop (against a closed loopback port).
 * The processes themselves: test/api/startupErrors.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../collector/src/config.ts';
import { connectDatabase } from '../../collector/src/storage/connect.ts';
import { createDb } from '../../collector/src/storage/db.ts';
import { describeDatabaseUrl, explainDatabaseError, explainListenError, StartupError } from '../../collector/src/startupErrors.ts';
import { freePort } from '../helpers/net.ts';

const URL_WITH_PASSWORD = 'postgres://shop:s3cr%40t-pass@db.internal:6543/referrals';

describe('startup errors', () => {
  it('describe the database without its password', () => {
    expect(describeDatabaseUrl(URL_WITH_PASSWORD)).toEqual({ host: 'db.internal', port: '6543', database: 'referrals', user: 'shop' });
    expect(describeDatabaseUrl('postgres://127.0.0.1/')).toEqual({
      host: '127.0.0.1',
      port: '5432',
      database: 'postgres',
      user: undefined,
    });
    for (const code of ['3D000', '28P01', 'ECONNREFUSED', 'ENOTFOUND', 'XX000']) {
      const message = explainDatabaseError(Object.assign(new Error('boom'), { code }), URL_WITH_PASSWORD).message;
      expect(message, code).not.toContain('s3cr');
      expect(message, code).toContain('db.internal:6543');
    }
  });

  it('say which database is missing and how to create it, which login was refused, and what did not answer', () => {
    const missing = explainDatabaseError(
      Object.assign(new Error('database "referrals" does not exist'), { code: '3D000' }),
      URL_WITH_PASSWORD,
    );
    expect(missing).toBeInstanceOf(StartupError);
    expect(missing.message).toContain('The database "referrals" does not exist on the PostgreSQL server at db.internal:6543');
    expect(missing.message).toContain('createdb -h db.internal -p 6543 -U shop referrals');

    const refused = explainDatabaseError(
      Object.assign(new Error('password authentication failed for user "shop"'), { code: '28P01' }),
      URL_WITH_PASSWORD,
    );
    expect(refused.message).toContain('refused the login as shop to "referrals" (password authentication failed for user "shop")');
    expect(refused.message).toContain('Check the user name and password in DATABASE_URL');

    const down = explainDatabaseError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), URL_WITH_PASSWORD, 30);
    expect(down.message).toContain(
      'Could not connect to PostgreSQL at db.internal:6543 for 30 s (connection refused: nothing listens there)',
    );
    expect(down.message).toContain('DATABASE_CONNECT_TIMEOUT_S');
    expect(explainDatabaseError(Object.assign(new Error('x'), { code: 'ENOTFOUND' }), URL_WITH_PASSWORD).message).toContain(
      'the host name db.internal does not resolve',
    );
  });

  it('say a port in use is in use, and leave other listen errors alone', () => {
    const inUse = explainListenError(Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }), '0.0.0.0', 8787);
    expect(inUse).toBeInstanceOf(StartupError);
    expect((inUse as StartupError).message).toMatch(
      /^Port 8787 on 0\.0\.0\.0 is in use \(another collector\?.*\)\. Set PORT to a free port or stop the other process\.$/,
    );
    const other = new Error('something else');
    expect(explainListenError(other, '0.0.0.0', 8787)).toBe(other);
  });

  it('DATABASE_CONNECT_TIMEOUT_S is 30 s unless set, and a whole number of seconds up to an hour', () => {
    expect(loadConfig({}).databaseConnectTimeoutS).toBe(30);
    expect(loadConfig({ DATABASE_CONNECT_TIMEOUT_S: '0' }).databaseConnectTimeoutS).toBe(0);
    for (const bad of ['abc', '-1', '1.5', '3601']) {
      expect(() => loadConfig({ DATABASE_CONNECT_TIMEOUT_S: bad }), bad).toThrow(ConfigError);
      try {
        loadConfig({ DATABASE_CONNECT_TIMEOUT_S: bad });
      } catch (error) {
        expect((error as ConfigError).problems, bad).toEqual([expect.stringMatching(/^DATABASE_CONNECT_TIMEOUT_S: /)]);
      }
    }
  });

  it('a server that does not answer is retried until the timeout, each retry told, then said in one paragraph', async () => {
    const databaseUrl = `postgres://postgres@127.0.0.1:${await freePort()}/x`;
    const db = createDb({ databaseUrl });
    const retries: Array<{ attempt: number; code: unknown }> = [];
    try {
      const failure = await connectDatabase(db, {
        databaseUrl,
        timeoutS: 1,
        onRetry: ({ attempt, error }) => retries.push({ attempt, code: (error as { code?: string }).code }),
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(StartupError);
      expect((failure as StartupError).message).toMatch(
        /^Could not connect to PostgreSQL at 127\.0\.0\.1:\d+ for \d+ s \(connection refused/,
      );
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries.map((retry) => retry.attempt)).toEqual(retries.map((_, index) => index + 1));
      expect(new Set(retries.map((retry) => retry.code))).toEqual(new Set(['ECONNREFUSED']));

      // No timeout: one attempt, no retry.
      retries.length = 0;
      await expect(
        connectDatabase(db, { databaseUrl, timeoutS: 0, onRetry: () => retries.push({ attempt: 0, code: '' }) }),
      ).rejects.toBeInstanceOf(StartupError);
      expect(retries).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});
