/**
 * Storage on every database: reversible migrations, the unique constraints that
 * carry the invariants (checked in SQL, under the API), and driver-independent values.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, isUniqueViolation } from '../../collector/src/storage/db.ts';
import { migrateLatest, migrateRollback } from '../../collector/src/storage/migrate.ts';
import { DATABASES, openTestDb, type TestDb } from '../helpers/databases.ts';
import { uniq } from '../helpers/factories.ts';

const TABLES = ['programs', 'api_keys', 'participants', 'codes', 'clicks', 'referrals', 'conversions', 'rewards', 'decisions'];
const SETTINGS = JSON.stringify({ origins: ['https://s.example'], landingUrl: 'https://s.example/' });

/** Inserts one row and returns its id. */
async function insert(db: Knex, table: string, row: Record<string, unknown>): Promise<string> {
  const [created] = (await db(table).insert(row).returning('id')) as Array<{ id: string }>;
  if (!created) throw new Error(`insert into ${table} returned nothing`);
  return created.id;
}

const newProgram = (db: Knex) => insert(db, 'programs', { slug: uniq('p-'), name: 'P', settings: SETTINGS });
const newParticipant = (db: Knex, programId: string, externalId = uniq('u-')) =>
  insert(db, 'participants', { program_id: programId, external_id: externalId });

/** Expects `attempt` to fail with unique_violation on `constraint` (both drivers, same error). */
async function expectUniqueViolation(attempt: Promise<unknown>, constraint: string) {
  const error = await attempt.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected a unique violation on ${constraint}`).toBeDefined();
  expect((error as { code?: string }).code).toBe('23505');
  expect(isUniqueViolation(error, constraint)).toBe(true);
}

describe('PGlite under DATA_DIR (the embedded production mode)', () => {
  it('keeps its data across closes and reopens, and hands back numbers for count, sum and numeric', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'referral-storage-'));
    try {
      let programId: string | undefined;
      const written: string[] = [];
      // Each round opens the files again, checks everything written so far, and adds a row.
      for (let round = 0; round < 3; round++) {
        const db = createDb({ dataDir });
        try {
          expect(await migrateLatest(db), `round ${round}`).toEqual(round === 0 ? expect.arrayContaining(['20261126000000_init']) : []);
          programId ??= await newProgram(db);
          const stored = (await db('participants')
            .where({ program_id: programId })
            .orderBy('external_id')
            .pluck('external_id')) as string[];
          expect(stored, `round ${round}`).toEqual(written);
          const externalId = `kept-${round}`;
          await newParticipant(db, programId, externalId);
          written.push(externalId);
          const { rows } = (await db.raw(
            `select count(*) as n, sum(x) as total, 12.5::numeric as num from (values (1::int8), (2::int8)) v(x)`,
          )) as {
            rows: Array<Record<string, unknown>>;
          };
          expect(rows[0]).toEqual({ n: 2, total: 3, num: 12.5 });
        } finally {
          await db.destroy();
        }
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(DATABASES)('storage (%s)', (kind) => {
  let testDb: TestDb;
  let db: Knex;
  // No app here (useTestApp would start one): these tests query storage directly.
  beforeAll(async () => {
    testDb = await openTestDb(kind);
    db = testDb.db;
  });
  afterAll(async () => {
    await testDb?.close();
  });

  it.runIf(kind === 'postgres')('never compiles a statement with JIT, on any pooled connection', async () => {
    // At 10M clicks the click batch's generic plan is estimated above jit_above_cost:
    // compiling it took 1.8 s, on every execution (the compiled code is not kept).
    const pool = testDb.open(3);
    try {
      const answers = await Promise.all(
        [1, 2, 3].map(() => pool.transaction(async (trx) => (await trx.raw('show jit')).rows[0] as { jit: string })),
      );
      expect(answers).toEqual([{ jit: 'off' }, { jit: 'off' }, { jit: 'off' }]);
    } finally {
      await pool.destroy();
    }
  });

  describe('unique constraints', () => {
    let programA: string;
    let programB: string;
    beforeAll(async () => {
      programA = await newProgram(db);
      programB = await newProgram(db);
    });

    it('programs: slug', async () => {
      const slug = uniq('slug-');
      await insert(db, 'programs', { slug, name: 'x', settings: SETTINGS });
      await expectUniqueViolation(insert(db, 'programs', { slug, name: 'y', settings: SETTINGS }), 'programs_slug_unique');
    });

    it('api_keys: hash', async () => {
      const hash = uniq('hash-');
      await insert(db, 'api_keys', { program_id: programA, kind: 'secret', hash, prefix: 'sk_x' });
      await expectUniqueViolation(
        insert(db, 'api_keys', { program_id: programB, kind: 'publishable', hash, prefix: 'pk_x' }),
        'api_keys_hash_unique',
      );
    });

    it('participants: (program, external_id), but the same external_id in another program is fine', async () => {
      const externalId = uniq('ext-');
      await newParticipant(db, programA, externalId);
      await expectUniqueViolation(newParticipant(db, programA, externalId), 'participants_program_id_external_id_unique');
      await expect(newParticipant(db, programB, externalId)).resolves.toBeTypeOf('string');
      // Case matters for external ids: they are the host's own ids.
      await expect(newParticipant(db, programA, externalId.toUpperCase())).resolves.toBeTypeOf('string');
    });

    it('codes: lower(code), across programs', async () => {
      const a = await newParticipant(db, programA);
      const b = await newParticipant(db, programB);
      const code = `Mix${uniq()}`;
      await insert(db, 'codes', { program_id: programA, participant_id: a, code });
      await expectUniqueViolation(insert(db, 'codes', { program_id: programA, participant_id: a, code }), 'codes_code_ci_unique');
      await expectUniqueViolation(
        insert(db, 'codes', { program_id: programB, participant_id: b, code: code.toLowerCase() }),
        'codes_code_ci_unique',
      );
      await expectUniqueViolation(
        insert(db, 'codes', { program_id: programB, participant_id: b, code: code.toUpperCase() }),
        'codes_code_ci_unique',
      );
      await expect(insert(db, 'codes', { program_id: programB, participant_id: b, code: `${code}x` })).resolves.toBeTypeOf('string');
    });

    it('referrals: one per referred participant', async () => {
      const referrer = await newParticipant(db, programA);
      const secondReferrer = await newParticipant(db, programA);
      const referred = await newParticipant(db, programA);
      const row = (referrerId: string) => ({
        program_id: programA,
        referrer_id: referrerId,
        referred_id: referred,
        status: 'attributed',
        verified: true,
      });
      await insert(db, 'referrals', row(referrer));
      await expectUniqueViolation(insert(db, 'referrals', row(referrer)), 'referrals_referred_unique');
      await expectUniqueViolation(insert(db, 'referrals', row(secondReferrer)), 'referrals_referred_unique');
    });

    it('conversions: (program, type, event_id)', async () => {
      const a = await newParticipant(db, programA);
      const b = await newParticipant(db, programB);
      const eventId = uniq('evt-');
      const row = (programId: string, participantId: string, type: string) => ({
        program_id: programId,
        participant_id: participantId,
        type,
        event_id: eventId,
        amount: 1000,
        currency: 'EUR',
        verified: true,
        source: 'server',
      });
      await insert(db, 'conversions', row(programA, a, 'purchase'));
      await expectUniqueViolation(insert(db, 'conversions', row(programA, a, 'purchase')), 'conversions_event_unique');
      // Another participant does not make it another event.
      await expectUniqueViolation(
        insert(db, 'conversions', row(programA, await newParticipant(db, programA), 'purchase')),
        'conversions_event_unique',
      );
      await expect(insert(db, 'conversions', row(programA, a, 'signup'))).resolves.toBeTypeOf('string');
      await expect(insert(db, 'conversions', row(programB, b, 'purchase'))).resolves.toBeTypeOf('string');
    });

    it('rewards: (conversion, rule, beneficiary)', async () => {
      const referrer = await newParticipant(db, programA);
      const referred = await newParticipant(db, programA);
      const conversion = await insert(db, 'conversions', {
        program_id: programA,
        participant_id: referred,
        type: 'purchase',
        event_id: uniq('evt-'),
        amount: 5000,
        currency: 'USD',
        verified: true,
        source: 'server',
      });
      const row = (rule: string, beneficiary: string) => ({
        program_id: programA,
        conversion_id: conversion,
        rule_id: rule,
        beneficiary_id: beneficiary,
        kind: 'cash',
        amount: 500,
        currency: 'USD',
        status: 'pending',
        available_at: new Date(),
      });
      await insert(db, 'rewards', row('r1', referrer));
      await expectUniqueViolation(insert(db, 'rewards', row('r1', referrer)), 'rewards_once_unique');
      await expect(insert(db, 'rewards', row('r2', referrer))).resolves.toBeTypeOf('string');
      await expect(insert(db, 'rewards', row('r1', referred))).resolves.toBeTypeOf('string');
    });

    it('holds under concurrent inserts: exactly one of many wins', async () => {
      const referrers = await Promise.all(Array.from({ length: 5 }, () => newParticipant(db, programA)));
      const referred = await newParticipant(db, programA);
      const results = await Promise.allSettled(
        referrers.map((referrer) =>
          db.transaction((trx) =>
            insert(trx, 'referrals', {
              program_id: programA,
              referrer_id: referrer,
              referred_id: referred,
              status: 'attributed',
              verified: true,
            }),
          ),
        ),
      );
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
      for (const result of results) {
        if (result.status === 'rejected') expect(isUniqueViolation(result.reason, 'referrals_referred_unique')).toBe(true);
      }
      expect(await db('referrals').where({ referred_id: referred })).toHaveLength(1);
    });
  });

  describe('values are the same JavaScript types on both drivers', () => {
    it('count(*), int8, numeric, sums and bigserial ids come back as numbers', async () => {
      const programId = await newProgram(db);
      const participant = await newParticipant(db, programId);
      const codeId = await insert(db, 'codes', { program_id: programId, participant_id: participant, code: uniq('C') });
      for (const amount of [1999, 2001, 9_000_000_000]) {
        await insert(db, 'conversions', {
          program_id: programId,
          participant_id: participant,
          type: 'purchase',
          event_id: uniq('e-'),
          amount,
          currency: 'EUR',
          verified: true,
          source: 'server',
        });
      }
      const clickId = await insert(db, 'clicks', { code_id: codeId, vid: 'visitor-1' });
      expect(typeof clickId).toBe('number');
      expect(Number.isInteger(clickId)).toBe(true);

      const [counted] = (await db('conversions').where({ program_id: programId }).count({ n: '*' })) as Array<{ n: unknown }>;
      expect(counted?.n).toBe(3);

      const [summed] = (await db('conversions').where({ program_id: programId }).sum({ total: 'amount' })) as Array<{ total: unknown }>;
      expect(summed?.total).toBe(9_000_004_000);

      const { rows } = (await db.raw(
        `select count(*) as n, sum(amount) as total, max(amount) as biggest, avg(amount)::numeric(20,2) as mean,
                9007199254740991::int8 as max_safe, 12.5::numeric as num, 7::int4 as int4
           from conversions where program_id = ?`,
        [programId],
      )) as { rows: Array<Record<string, unknown>> };
      expect(rows[0]).toEqual({
        n: 3,
        total: 9_000_004_000,
        biggest: 9_000_000_000,
        mean: 3_000_001_333.33,
        max_safe: Number.MAX_SAFE_INTEGER,
        num: 12.5,
        int4: 7,
      });

      const row = (await db('conversions').where({ program_id: programId }).orderBy('amount', 'desc').first()) as Record<string, unknown>;
      expect(row.amount).toBe(9_000_000_000);
      expect(row.created_at).toBeInstanceOf(Date);
      expect(row.verified).toBe(true);
      const program = (await db('programs').where({ id: programId }).first()) as { settings: unknown };
      expect(program.settings).toEqual(JSON.parse(SETTINGS));
    });

    it('ids default to database-generated, time-ordered v7 uuids (time_ordered_ids)', async () => {
      const id = await newProgram(db);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });
  });

  describe('migrations', () => {
    // Its own database: rolling back must not pull the tables from under the other tests.
    let own: TestDb;
    beforeAll(async () => {
      own = await openTestDb(kind);
    });
    afterAll(async () => {
      await own?.close();
    });

    /** Every relation (table, index, sequence, view) and non-row type in the working schema, besides knex's own. */
    async function schemaObjects(knex: Knex): Promise<string[]> {
      const { rows } = (await knex.raw(
        `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = current_schema() and c.relname not like 'knex\\_migrations%'
         union all
         select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
          where n.nspname = current_schema() and t.typtype in ('e', 'd', 'c') and t.typrelid = 0
         order by 1`,
      )) as { rows: Array<{ name: string }> };
      return rows.map((row) => row.name);
    }

    it('roll all the way back, leaving nothing behind, and apply again to the same schema', async () => {
      const knex = own.db;
      const applied = ((await knex('knex_migrations').orderBy('id').select('name')) as Array<{ name: string }>).map((row) => row.name);
      expect(applied[0]).toBe('20261126000000_init');
      for (const table of TABLES) expect(await knex.schema.hasTable(table), table).toBe(true);
      const before = await schemaObjects(knex);
      expect(before).toEqual(
        expect.arrayContaining([
          ...TABLES,
          'codes_code_ci_unique',
          'referrals_referred_unique',
          'conversions_event_unique',
          'rewards_once_unique',
        ]),
      );

      // Rows in the tables must not stop a rollback.
      const programId = await newProgram(knex);
      const participant = await newParticipant(knex, programId);
      await insert(knex, 'codes', { program_id: programId, participant_id: participant, code: uniq('R') });

      const rolledBack = await migrateRollback(knex, true);
      expect([...rolledBack].sort()).toEqual([...applied].sort());
      for (const table of TABLES) expect(await knex.schema.hasTable(table), table).toBe(false);
      expect(await schemaObjects(knex)).toEqual([]);
      expect(await knex('knex_migrations').count({ n: '*' })).toEqual([{ n: 0 }]);

      expect(await migrateLatest(knex)).toEqual(applied);
      expect(await schemaObjects(knex)).toEqual(before);
      expect(await migrateLatest(knex)).toEqual([]);

      // The re-created schema works, constraints included.
      const again = await newProgram(knex);
      await newParticipant(knex, again, 'same');
      await expectUniqueViolation(newParticipant(knex, again, 'same'), 'participants_program_id_external_id_unique');
    });
  });
});
