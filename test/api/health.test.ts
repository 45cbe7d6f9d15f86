/**
 * Liveness and readiness through the real app, on every database: /v1/health never
 * depends on the database, /v1/ready and keyed routes answer 503 (with Retry-After,
 * without internals) when it is unreachable.
 */
import { describe, expect, it } from 'vitest';
import { createDb } from '../../collector/src/storage/db.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';

describe.each(DATABASES)('health (%s)', (kind) => {
  let api: TestApp;
  useTestApp(kind, (suite) => ({ api } = suite));

  describe('health and readiness', () => {
    it('GET /v1/health answers 200 without a key', async () => {
      const reply = await api.get('/v1/health');
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({ status: 'ok' });
    });

    it('GET /v1/ready answers 200 while the database answers', async () => {
      const reply = await api.get('/v1/ready');
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({ status: 'ready' });
    });

    it('GET /v1/ready answers 503 when the database is unreachable', async () => {
      // PostgreSQL: nothing listens on port 1. PGlite: a handle that has been closed.
      const deadDb =
        kind === 'postgres'
          ? createDb({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere', poolMax: 1 })
          : createDb({ dataDir: null });
      if (kind === 'pglite') await deadDb.destroy();
      const dead = await startTestApp(deadDb);
      try {
        const ready = await dead.get('/v1/ready');
        expect(ready.status).toBe(503);
        expect(ready.body).toEqual({ error: { code: 'unavailable', message: 'The database is unreachable' } });
        expect(ready.headers.get('retry-after')).toBe('2');
        // Liveness does not depend on the database.
        expect((await dead.get('/v1/health')).status).toBe(200);
      } finally {
        await dead.close();
        if (kind === 'postgres') await deadDb.destroy();
      }
    });
  });
});

// Hand-built: an app on a database that is not there.
describe('an unreachable PostgreSQL', () => {
  it('answers 503 unavailable on a keyed route, without internals', async () => {
    const db = createDb({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere', poolMax: 1 });
    const api = await startTestApp(db);
    try {
      const reply = await api.get('/v1/program', { auth: `sk_${'B'.repeat(32)}` });
      expect(reply.status).toBe(503);
      expect(reply.body).toEqual({ error: { code: 'unavailable', message: 'The database is unavailable; retry shortly' } });
      expect(reply.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|stack/);
    } finally {
      await api.close();
      await db.destroy();
    }
  });
});
