/**
 * The compact click row (migration 20261205000000_compact_clicks), on every database:
 * user agents kept once in a dictionary, whatever the number of clicks and writers;
 * the same-IP index on recent months only, and the lookup finding it; and clicks
 * written in the earlier shape carried over by the migration, with nothing lost.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { type ClickInput, recordClicks } from '../../collector/src/domain/clicks.ts';
import { dropExpiredClicks, ensureClickPartitions, retireRecentIndexes } from '../../collector/src/storage/clickPartitions.ts';
import { migrateDown, migrateLatest } from '../../collector/src/storage/migrate.ts';
import { openGenericPlanDb } from '../../collector/src/storage/db.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, type ProgramFixture, uniq } from '../helpers/factories.ts';
import { clickDetails, DAY_MS } from '../helpers/rows.ts';
import { useTestApp, useTestDb } from '../helpers/suite.ts';

const ipKey = (hash: string) => createHash('md5').update(hash).digest('hex');
const monthName = (at: Date) => `clicks_m${at.getUTCFullYear()}${String(at.getUTCMonth() + 1).padStart(2, '0')}`;

describe.each(DATABASES)('compact clicks (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let testDb: TestDb;
  useTestApp(kind, (suite) => ({ db, api, testDb } = suite));

  const click = (program: ProgramFixture, code: string, extra: Partial<ClickInput>): ClickInput => ({
    programId: program.id,
    code,
    url: 'https://shop.example/',
    ...extra,
  });

  it('keeps each user agent once, and every click still says which it was', async () => {
    const program = await buildProgram(api);
    const [a, b] = [await buildParticipant(api, program), await buildParticipant(api, program)];
    const agent = `Browser/${uniq('ua')}`;
    const other = `Other/${uniq('ua')}`;
    await recordClicks(db, [
      click(program, a.code, { vid: uniq('vid_'), userAgent: agent }),
      click(program, b.code, { vid: uniq('vid_'), userAgent: agent }),
      click(program, a.code, { vid: uniq('vid_'), userAgent: other }),
      click(program, b.code, { vid: uniq('vid_') }),
    ]);
    await recordClicks(db, [click(program, a.code, { vid: uniq('vid_'), userAgent: agent })]);
    expect(await db('user_agents').whereIn('user_agent', [agent, other]).count({ n: '*' })).toEqual([{ n: 2 }]);
    const rows = await clickDetails(db).where('c.program_id', program.id);
    expect(rows.map((row) => row.user_agent)).toEqual([agent, agent, other, null, agent]);
    // An invalid code's click adds nothing to the dictionary.
    const junk = `Junk/${uniq('ua')}`;
    await recordClicks(db, [click(program, 'NOPE2345', { vid: uniq('vid_'), userAgent: junk })]);
    expect(await db('user_agents').where({ user_agent: junk })).toEqual([]);
  });

  it('forgets the user agents that only dropped months had', async () => {
    const program = await buildProgram(api);
    const referrer = await buildParticipant(api, program);
    const [gone, kept] = [`Gone/${uniq('ua')}`, `Kept/${uniq('ua')}`];
    await recordClicks(db, [
      click(program, referrer.code, { vid: uniq('vid_'), userAgent: gone }),
      click(program, referrer.code, { vid: uniq('vid_'), userAgent: kept }),
    ]);
    // The first click moves 200 days back, into a month of its own, which retention then drops.
    const old = new Date(Date.now() - 200 * DAY_MS);
    const goneId = ((await db('user_agents').where({ user_agent: gone }).first('id')) as { id: number }).id;
    await db('clicks').where({ user_agent_id: goneId }).update({ created_at: old });
    await ensureClickPartitions(db, { from: old });
    expect(await dropExpiredClicks(db, 100)).toContain(monthName(old));
    expect(await db('user_agents').where({ user_agent: gone })).toEqual([]);
    expect(await db('user_agents').where({ user_agent: kept })).toHaveLength(1);
    expect((await clickDetails(db).where('c.program_id', program.id)).map((row) => row.user_agent)).toEqual([kept]);
  });

  it.runIf(kind === 'postgres')('gives a click its user agent when another writer adds the same new one meanwhile', async () => {
    const program = await buildProgram(api);
    const [a, b] = [await buildParticipant(api, program), await buildParticipant(api, program)];
    const agent = `Race/${uniq('ua')}`;
    const second = testDb.open(2);
    try {
      const trx = await db.transaction();
      // The first writer has added it, not yet committed: the second waits on the unique index.
      await recordClicks(trx, [click(program, a.code, { vid: uniq('vid_'), userAgent: agent })]);
      const waiting = recordClicks(second, [click(program, b.code, { vid: uniq('vid_'), userAgent: agent })]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await trx.commit();
      expect(await waiting).toEqual([{ valid: true, stored: true }]);
    } finally {
      await second.destroy();
    }
    const rows = await clickDetails(db).where('c.program_id', program.id);
    expect(rows.map((row) => row.user_agent)).toEqual([agent, agent]);
  });

  it("finds a visitor's clicks through a hash index on the visitor id alone, in every partition", async () => {
    // A hash entry is ~20 bytes whatever the id's length (a btree on (vid, code_id, created_at)
    // took ~80 per click), so more of it stays in memory as the months fill up.
    const result = await db.raw(
      `select t.relname as partition, a.amname as method, pg_get_indexdef(i.indexrelid) as definition
         from pg_inherits h join pg_class t on t.oid = h.inhrelid
         join pg_index i on i.indrelid = t.oid join pg_class x on x.oid = i.indexrelid join pg_am a on a.oid = x.relam
        where h.inhparent = 'clicks'::regclass and pg_get_indexdef(i.indexrelid) ~ 'USING \\w+ \\(vid'`,
    );
    const rows = result.rows as Array<{ partition: string; method: string; definition: string }>;
    const partitions = (await db.raw(`select count(*)::int as n from pg_inherits where inhparent = 'clicks'::regclass`)).rows[0].n;
    expect(rows).toHaveLength(partitions);
    for (const row of rows) expect([row.method, row.definition.replace(/.*USING /, '')]).toEqual(['hash', 'hash (vid)']);

    // The lookup of a visitor's clicks on a code within the hour reads it.
    const plan = await db.transaction(async (trx) => {
      await trx.raw('set local enable_seqscan = off');
      const explained = await trx.raw(
        `explain select max(k.created_at) from clicks k where k.vid = 'v-1' and k.code_id = gen_random_uuid()`,
      );
      return (explained.rows as Array<Record<string, string>>).map((row) => Object.values(row)[0]).join('\n');
    });
    expect(plan).toMatch(/Index Scan (on|using) clicks_m\d{6}_vid_idx/);
  });

  it.runIf(kind === 'postgres')(
    'runs every batch on the generic plan, and gives the pooled connection back with its own plan choice',
    async () => {
      const program = await buildProgram(api);
      const referrer = await buildParticipant(api, program);
      const single = testDb.open(1);
      const sent: string[] = [];
      single.on('query', (query: { sql: string }) => sent.push(query.sql));
      try {
        // Sizes PostgreSQL, left to choose, plans afresh each time (more than five executions: then it compares).
        for (const size of [1, 8, 24, 24, 24, 24, 24, 100]) {
          const batch = Array.from({ length: size }, () => click(program, referrer.code, { vid: uniq('vid_') }));
          expect(await recordClicks(single, batch)).toEqual(batch.map(() => ({ valid: true, stored: true })));
        }
        const plans = await single.raw(`select generic_plans, custom_plans from pg_prepared_statements where name = 'click_batch'`);
        expect(plans.rows).toEqual([{ generic_plans: 8, custom_plans: 0 }]);
        // Each batch's transaction sets what the server's click connection sets once (no bitmap scans either).
        expect(sent.filter((sql) => sql.startsWith('set local'))).toEqual(
          Array(8).fill('set local plan_cache_mode = force_generic_plan; set local enable_bitmapscan = off'),
        );
        // The same (only) connection: the generic plan was for each batch's own transaction.
        expect((await single.raw('show plan_cache_mode')).rows).toEqual([{ plan_cache_mode: 'auto' }]);
      } finally {
        await single.destroy();
      }
    },
  );

  it.runIf(kind === 'postgres')(
    "the server's click connection runs generic plans from its session, with no transaction a batch",
    async () => {
      const program = await buildProgram(api);
      const referrer = await buildParticipant(api, program);
      const generic = openGenericPlanDb(db)!;
      try {
        const session = async () =>
          (
            await generic.raw(
              `select pg_backend_pid() as pid, current_setting('plan_cache_mode') as mode, current_setting('jit') as jit,
                current_setting('enable_bitmapscan') as bitmap`,
            )
          ).rows[0];
        const before = await session();
        expect(before).toMatchObject({ mode: 'force_generic_plan', jit: 'off', bitmap: 'off' });
        const sent: string[] = [];
        generic.on('query', (query: { sql: string }) => sent.push(query.sql));
        for (const size of [1, 8, 24, 24, 24, 24, 24, 100]) {
          const batch = Array.from({ length: size }, () => click(program, referrer.code, { vid: uniq('vid_') }));
          expect(await recordClicks(generic, batch)).toEqual(batch.map(() => ({ valid: true, stored: true })));
        }
        // Only the batches went to the server: no BEGIN, SET LOCAL or COMMIT around them.
        expect(sent).toHaveLength(8);
        expect(sent.filter((sql) => !sql.startsWith('with input as'))).toEqual([]);
        const plans = await generic.raw(`select generic_plans, custom_plans from pg_prepared_statements where name = 'click_batch'`);
        expect(plans.rows).toEqual([{ generic_plans: 8, custom_plans: 0 }]);
        // A visitor's clicks are read through their index, with no bitmap to build and no
        // table size to read again for every click (as a bitmap heap scan's rescan does).
        const plan = (
          await generic.raw(
            // EXPLAIN EXECUTE takes no bind parameters: the id is our own uuid.
            `explain (costs off) execute click_batch(array[0], array['${program.id}'::uuid], array['x'], array['x'], array['v'],
              array[null], array[null], array[null], array[null], now(), now(), now())`,
          )
        ).rows
          .map((row: { 'QUERY PLAN': string }) => row['QUERY PLAN'])
          .join('\n');
        expect(plan).toMatch(/Index Scan using clicks_m\d+_vid_idx/);
        expect(plan).not.toMatch(/Bitmap/);
        // One connection all along; the main pool keeps its own plan choice.
        expect((await session()).pid).toBe(before.pid);
        expect((await db.raw('show plan_cache_mode')).rows).toEqual([{ plan_cache_mode: 'auto' }]);
      } finally {
        await generic.destroy();
      }
    },
  );

  it('keeps the same-IP index on recent months only, and the lookup reads it', async () => {
    const indexes = async () =>
      // This suite's schema only: other suites run beside it, each with its own partitions.
      (
        (
          await db.raw(
            `select relname from pg_class where relkind = 'i' and relname like 'clicks%code_ip' and relnamespace = current_schema()::regnamespace order by 1`,
          )
        ).rows as Array<{
          relname: string;
        }>
      ).map((row) => row.relname);
    const now = new Date();
    const thisMonth = monthName(now);
    const nextMonth = monthName(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)));
    expect(await indexes()).toEqual(expect.arrayContaining(['clicks_default_code_ip', `${thisMonth}_code_ip`, `${nextMonth}_code_ip`]));
    // An old month made now has none.
    const old = new Date(now.getTime() - 200 * DAY_MS);
    expect(await ensureClickPartitions(db, { from: old })).toContain(monthName(old));
    expect(await indexes()).not.toContain(`${monthName(old)}_code_ip`);

    // The lookup of a redirect click (no visitor id) goes through this month's index.
    const plan = await db.transaction(async (trx) => {
      await trx.raw('set local enable_seqscan = off');
      const result = await trx.raw(
        `explain select 1 from clicks k where k.code_id = gen_random_uuid() and k.ip_hash = decode(md5('x'), 'hex')
           and k.created_at >= now() - interval '1 hour' limit 1`,
      );
      return (result.rows as Array<Record<string, string>>).map((row) => Object.values(row)[0]).join('\n');
    });
    expect(plan).toContain(`${thisMonth}_code_ip`);

    // A day after this month ends, its index goes; the next months keep theirs.
    const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    expect(await retireRecentIndexes(db, new Date(monthEnd + DAY_MS / 2))).toEqual([]);
    expect(await retireRecentIndexes(db, new Date(monthEnd + 2 * DAY_MS))).toEqual([thisMonth]);
    expect(await indexes()).not.toContain(`${thisMonth}_code_ip`);
    expect(await indexes()).toContain(`${nextMonth}_code_ip`);
    // Upkeep puts back a recent month's index that is missing.
    await ensureClickPartitions(db);
    expect(await indexes()).toContain(`${thisMonth}_code_ip`);
  });

  it('makes and retires its own same-IP indexes whatever another schema of the database holds', async () => {
    const indexes = async () =>
      (
        (
          await db.raw(
            `select relname from pg_class where relkind = 'i' and relname like 'clicks%code_ip' and relnamespace = current_schema()::regnamespace order by 1`,
          )
        ).rows as Array<{ relname: string }>
      ).map((row) => row.relname);
    const thisMonth = monthName(new Date());
    // Another schema (another install, or another suite) with an index of the same name.
    const other = uniq('decoy_');
    await db.raw(`create schema ${other}`);
    try {
      await db.raw(`create table ${other}.t (a int)`);
      await db.raw(`create index ${thisMonth}_code_ip on ${other}.t (a)`);
      await db.raw(`drop index ${thisMonth}_code_ip`);
      expect(await indexes()).not.toContain(`${thisMonth}_code_ip`);
      await ensureClickPartitions(db);
      expect(await indexes()).toContain(`${thisMonth}_code_ip`);
    } finally {
      await db.raw(`drop schema ${other} cascade`);
    }
  });
});

describe.each(DATABASES)('the compact clicks migration (%s)', (kind) => {
  const own = useTestDb(kind);

  it('carries clicks of the earlier shape over: user agents into the dictionary, IP hashes as keys, owners from codes', async () => {
    const knex = own().db;
    expect(await migrateDown(knex)).toEqual(['20261209000000_conversion_answers']);
    expect(await migrateDown(knex)).toEqual(['20261208000100_refunds_by_purchase']);
    expect(await migrateDown(knex)).toEqual(['20261208000000_time_ordered_ids']);
    expect(await migrateDown(knex)).toEqual(['20261207000100_leaderboard_rankings']);
    expect(await migrateDown(knex)).toEqual(['20261207000000_report_rollups']);
    expect(await migrateDown(knex)).toEqual(['20261206000100_sparse_rollup_indexes']);
    expect(await migrateDown(knex)).toEqual(['20261206000000_visitor_hash_index']);
    expect(await migrateDown(knex)).toEqual(['20261205000100_clicks_by_code']);
    expect(await migrateDown(knex)).toEqual(['20261205000000_compact_clicks']);
    expect(await knex.schema.hasTable('user_agents')).toBe(false);
    const [program] = (await knex('programs').insert(
      { name: 'M', slug: uniq('m'), settings: JSON.stringify({ origins: ['https://m.example'], landingUrl: 'https://m.example/' }) },
      ['id'],
    )) as Array<{ id: string }>;
    const [person] = (await knex('participants').insert({ program_id: program?.id, external_id: 'u1' }, ['id'])) as Array<{ id: string }>;
    const [code] = (await knex('codes').insert({ program_id: program?.id, participant_id: person?.id, code: uniq('M') }, ['id'])) as Array<{
      id: string;
    }>;
    const old = { program_id: program?.id, code_id: code?.id, participant_id: person?.id, url: 'https://shop.example/' };
    const at = new Date(Date.now() - 40 * DAY_MS);
    await knex('clicks').insert([
      { ...old, vid: 'visitor-1', ip_hash: 'hash-one', user_agent: 'Agent/1', created_at: at },
      { ...old, vid: 'visitor-2', ip_hash: 'hash-two', user_agent: 'Agent/1' },
      { ...old, vid: null, ip_hash: 'hash-two', user_agent: 'Agent/2', referrer: 'https://t.co/' },
      { ...old, vid: 'visitor-3', ip_hash: null, user_agent: null },
    ]);

    expect(await migrateLatest(knex)).toEqual([
      '20261205000000_compact_clicks',
      '20261205000100_clicks_by_code',
      '20261206000000_visitor_hash_index',
      '20261206000100_sparse_rollup_indexes',
      '20261207000000_report_rollups',
      '20261207000100_leaderboard_rankings',
      '20261208000000_time_ordered_ids',
      '20261208000100_refunds_by_purchase',
      '20261209000000_conversion_answers',
    ]);
    expect(await knex.schema.hasColumn('clicks', 'program_id')).toBe(false);
    const rows = await clickDetails(knex).where('c.program_id', program?.id);
    expect(
      rows.map(({ vid, ip_hash, user_agent, participant_id, referrer }) => ({ vid, ip_hash, user_agent, participant_id, referrer })),
    ).toEqual([
      { vid: 'visitor-1', ip_hash: ipKey('hash-one'), user_agent: 'Agent/1', participant_id: person?.id, referrer: null },
      { vid: 'visitor-2', ip_hash: ipKey('hash-two'), user_agent: 'Agent/1', participant_id: person?.id, referrer: null },
      { vid: null, ip_hash: ipKey('hash-two'), user_agent: 'Agent/2', participant_id: person?.id, referrer: 'https://t.co/' },
      { vid: 'visitor-3', ip_hash: null, user_agent: null, participant_id: person?.id, referrer: null },
    ]);
    expect(rows[0]?.created_at).toEqual(at);
    expect(await knex('user_agents').whereIn('user_agent', ['Agent/1', 'Agent/2']).count({ n: '*' })).toEqual([{ n: 2 }]);
    // New clicks take ids after the carried ones.
    const [next] = (await knex('clicks').insert({ code_id: code?.id, vid: 'visitor-4' }, ['id'])) as Array<{
      id: number;
    }>;
    expect(Number(next?.id)).toBeGreaterThan(Math.max(...rows.map((row) => Number(row.id))));
  });
});
