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
  /** Another app on the same database with its own environment (over the suite's), closed with the suite. */
  startApp: (env: Record<string, string>) => Promise<TestApp>;
}

export interface SuiteOptions {
  /** Environment for the app, over the test defaults (see startTestApp). */
  env?: Record<string, string>;
  /** The PostgreSQL pool size of the suite's handle. */
  poolMax?: number;
}

export function useTestApp(kind: DbKind, assign: (suite: Suite) => void, options: SuiteOptions = {}): void {
  let testDb: TestDb | undefined;
  const apps: TestApp[] = [];
  beforeAll(async () => {
    const opened = await openTestDb(kind, options.poolMax === undefined ? {} : { poolMax: options.poolMax });
    testDb = opened;
    const startApp = async (env: Record<string, string>) => {
      const app = await startTestApp(opened.db, { ...options.env, ...env });
      apps.push(app);
      return app;
    };
    assign({ testDb: opened, db: opened.db, api: await startApp({}), startApp });
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await testDb?.close();
  });
}

/**
 * A fresh database of the given kind for the suite alone, without an app (migration
 * suites step its schema up and down), closed after the suite. Call the getter in tests.
 */
export function useTestDb(kind: DbKind): () => TestDb {
  let testDb: TestDb | undefined;
  beforeAll(async () => {
    testDb = await openTestDb(kind);
  });
  afterAll(async () => {
    await testDb?.close();
  });
  return () => testDb as TestDb;
}
