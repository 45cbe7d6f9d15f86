/**
 * The databases every storage suite runs on: embedded PGlite always, PostgreSQL
 * when TEST_DATABASE_URL is set (CI sets it, and fails when it is missing).
 * Each suite gets its own PGlite instance or its own PostgreSQL schema.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { createDb } from '../../collector/src/storage/db.ts';
import { migrateLatest } from '../../collector/src/storage/migrate.ts';

export type DbKind = 'pglite' | 'postgres';

const url = process.env.TEST_DATABASE_URL;
if (process.env.CI === 'true' && !url) {
  throw new Error('CI=true but TEST_DATABASE_URL is unset: the PostgreSQL suites would be skipped');
}

/** Use with `describe.each(DATABASES)('… (%s)', (kind) => …)`. */
export const DATABASES: DbKind[] = url ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDb {
  db: Knex;
  kind: DbKind;
  /** The connection options, to open a second handle on the same data (PostgreSQL only). */
  open: (poolMax?: number) => Knex;
  close: () => Promise<void>;
}

/** A fresh, migrated database for one suite. */
export async function openTestDb(kind: DbKind, options: { poolMax?: number } = {}): Promise<TestDb> {
  if (kind === 'pglite') {
    const db = createDb({ dataDir: null });
    await migrateLatest(db);
    return {
      db,
      kind,
      open: () => {
        throw new Error('PGlite is single-connection: open a second handle on PostgreSQL only');
      },
      close: () => db.destroy(),
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = createDb({ databaseUrl: url, poolMax: 1 });
  await admin.raw(`create schema ${schema}`);
  await admin.destroy();
  const open = (poolMax = options.poolMax ?? 10) => createDb({ databaseUrl: url, schema, poolMax });
  const db = open();
  await migrateLatest(db);
  return {
    db,
    kind,
    open,
    close: async () => {
      await db.raw(`drop schema ${schema} cascade`);
      await db.destroy();
    },
  };
}
