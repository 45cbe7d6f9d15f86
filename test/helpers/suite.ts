/**
 * The usual suite set-up: a fresh database of the given kind and the real app on it,
 * closed after the suite. `assign` hands both to the suite's own variables.
 */
import type { Knex } from 'knex';
import { afterAll, beforeAll } from 'vitest';
import { startTestApp, type TestApp } from './app.ts';
import { openTestDb, type DbKind, type TestDb } from './databases.ts';

export interface Suite {
  testDb: TestDb;
  db: Knex;
  api: TestApp;
}

export function useTestApp(kind: DbKind, assign: (suite: Suite) => void, env: Record<string, string> = {}): void {
  let suite: Suite | undefined;
  beforeAll(async () => {
    const testDb = await openTestDb(kind);
    suite = { testDb, db: testDb.db, api: await startTestApp(testDb.db, env) };
    assign(suite);
  });
  afterAll(async () => {
    await suite?.api.close();
    await suite?.testDb.close();
  });
}
