/**
 * The click batch statement (domain/clicks.ts) on both databases: the rules applied
 * inside one batch, where earlier clicks of the same batch count as if stored, and
 * across batches, including the claim of a redirect-link click. Hand-computed.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { recordClicks, type ClickInput } from '../../collector/src/domain/clicks.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, type ProgramFixture } from '../helpers/factories.ts';
import { clickDetails } from '../helpers/rows.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';
import type { TestApp } from '../helpers/app.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';

describe.each(DATABASES)('click batches (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let testDb: Suite['testDb'];
  useTestApp(kind, (suite: Suite) => ({ db, api, testDb } = suite));

  async function setup() {
    const program = await buildProgram(api);
    const other = await buildProgram(api);
    const [p1, p2, p3] = await Promise.all([
      buildParticipant(api, program),
      buildParticipant(api, program),
      buildParticipant(api, program),
    ]);
    const foreign = await buildParticipant(api, other);
    await db('codes').where({ code: p3.code }).update({ disabled_at: new Date() });
    return { program, p1, p2, p3, foreign };
  }

  const click = (program: ProgramFixture, code: string, extra: Partial<ClickInput> = {}): ClickInput => ({
    programId: program.id,
    code,
    url: 'https://shop.example/',
    ...extra,
  });

  async function counts(program: ProgramFixture, participantId: string) {
    const row = await db('daily_stats').where({ program_id: program.id, participant_id: participantId }).first('clicks', 'visitors');
    return row ?? { clicks: 0, visitors: 0 };
  }

  async function programTotals(program: ProgramFixture) {
    const [row] = await db('program_daily').where({ program_id: program.id }).sum({ clicks: 'clicks', visitors: 'visitors' });
    return { clicks: Number(row?.clicks ?? 0), visitors: Number(row?.visitors ?? 0) };
  }

  it('decides every click of one batch in order, as if the earlier ones were already stored', async () => {
    const { program, p1, p2, p3, foreign } = await setup();
    const results = await recordClicks(db, [
      click(program, p1.code, { vid: 'v1', ipHash: 'ip1' }), // new visitor
      click(program, p1.code, { vid: 'v1', ipHash: 'ip1' }), // same visitor, same code
      click(program, p2.code.toLowerCase(), { vid: 'v1', ipHash: 'ip1' }), // a known visitor on another code
      click(program, p1.code, { ipHash: 'ip2' }), // no visitor id
      click(program, p1.code, { ipHash: 'ip2' }), // the same address again
      click(program, p1.code, { ipHash: 'ip1' }), // the address of the first click
      click(program, foreign.code, { vid: 'v9' }), // another program's code
      click(program, p3.code, { vid: 'v9' }), // disabled
      click(program, 'NOPE2345', { vid: 'v9' }),
      click(program, p2.code, { vid: 'v2' }),
    ]);
    expect(results.map((r) => [r.valid, r.stored])).toEqual([
      [true, true],
      [true, false],
      [true, true],
      [true, true],
      [true, false],
      [true, false],
      [false, false],
      [false, false],
      [false, false],
      [true, true],
    ]);
    expect(await clicksOf(db, program.id).count({ n: '*' })).toEqual([{ n: 4 }]);
    expect(await counts(program, p1.id)).toEqual({ clicks: 2, visitors: 2 });
    expect(await counts(program, p2.id)).toEqual({ clicks: 2, visitors: 1 });
    expect(await programTotals(program)).toEqual({ clicks: 4, visitors: 3 });
    const decisions = await db('decisions')
      .where({ program_id: program.id, subject: 'click' })
      .orderBy('id')
      .select('outcome', 'reason', 'code');
    expect(decisions).toEqual([
      { outcome: 'rejected', reason: 'unknown_code', code: foreign.code },
      { outcome: 'rejected', reason: 'code_disabled', code: p3.code },
      { outcome: 'rejected', reason: 'unknown_code', code: 'NOPE2345' },
    ]);
    // The other program saw nothing.
    expect(await programTotals({ id: foreign.id } as ProgramFixture)).toEqual({ clicks: 0, visitors: 0 });
  });

  it('lets the first snippet click after a redirect-link click claim it, and a known visitor takes back the visitor it counted', async () => {
    const { program, p1, p2 } = await setup();
    await recordClicks(db, [click(program, p1.code, { vid: 'known' })]);
    // Two redirect-link clicks (no visitor id yet), on two codes, from two addresses.
    expect(await recordClicks(db, [click(program, p1.code, { ipHash: 'ip3' }), click(program, p2.code, { ipHash: 'ip4' })])).toEqual([
      { valid: true, stored: true },
      { valid: true, stored: true },
    ]);
    expect(await counts(program, p1.id)).toEqual({ clicks: 2, visitors: 2 });
    expect(await counts(program, p2.id)).toEqual({ clicks: 1, visitors: 1 });

    const results = await recordClicks(db, [
      click(program, p1.code, { vid: 'v3', ipHash: 'ip3', url: 'https://shop.example/?ref=x' }), // claims the ip3 click
      click(program, p1.code, { vid: 'v4', ipHash: 'ip3' }), // that click is taken: a click of its own
      click(program, p2.code, { vid: 'known', ipHash: 'ip4' }), // claims ip4, but this visitor was counted already
      click(program, p1.code, { ipHash: 'ip3' }), // no visitor id, an address seen within the hour
    ]);
    expect(results).toEqual([
      { valid: true, stored: false },
      { valid: true, stored: true },
      { valid: true, stored: false },
      { valid: true, stored: false },
    ]);
    const rowsOf = (code: string) =>
      clickDetails(db)
        .where('c.program_id', program.id)
        .where('c.code', code)
        .then((rows) => rows.map(({ vid, ip_hash, url }) => ({ vid, ip_hash, url })));
    const ip = (hash: string) => createHash('md5').update(hash).digest('hex'); // as clicks keep it (ipKeySql)
    expect(await rowsOf(p1.code)).toEqual([
      { vid: 'known', ip_hash: null, url: 'https://shop.example/' },
      { vid: 'v3', ip_hash: ip('ip3'), url: 'https://shop.example/?ref=x' },
      { vid: 'v4', ip_hash: ip('ip3'), url: 'https://shop.example/' },
    ]);
    expect(await rowsOf(p2.code)).toEqual([{ vid: 'known', ip_hash: ip('ip4'), url: 'https://shop.example/' }]);
    // p1: v3's landing counted once, v4 new. p2: the landing was "known", counted before on p1.
    expect(await counts(program, p1.id)).toEqual({ clicks: 3, visitors: 3 });
    expect(await counts(program, p2.id)).toEqual({ clicks: 1, visitors: 0 });
    expect(await programTotals(program)).toEqual({ clicks: 4, visitors: 3 });

    // A later batch sees all of it: every one of these is a repeat within the hour.
    const again = await recordClicks(db, [
      click(program, p1.code, { vid: 'v3' }),
      click(program, p1.code, { vid: 'v4' }),
      click(program, p2.code, { vid: 'known' }),
    ]);
    expect(again.map((r) => r.stored)).toEqual([false, false, false]);
    expect(await programTotals(program)).toEqual({ clicks: 4, visitors: 3 });
  });

  it.runIf(kind === 'postgres')(
    'probes no partition made ahead for the coming months: a batch reads this month and the default partition only',
    async () => {
      const { program, p1 } = await setup();
      // One connection, so that its own statistics can be flushed and read.
      const single = testDb.open(1);
      try {
        const probes = async () => {
          await single.raw('select pg_stat_force_next_flush()');
          await single.raw('select 1'); // the flush happens when a transaction ends
          await single.raw('select pg_stat_clear_snapshot()');
          const result = await single.raw(
            `select relname as partition, idx_scan::int as probes from pg_stat_user_indexes
             where schemaname = current_schema() and indexrelname like 'clicks%' order by 1, indexrelname`,
          );
          const byPartition: Record<string, number> = {};
          for (const row of result.rows as Array<{ partition: string; probes: number }>)
            byPartition[row.partition] = (byPartition[row.partition] ?? 0) + row.probes;
          return byPartition;
        };
        const before = await probes();
        // Visitor ids (their visitor lookups) and redirect clicks (the last hour's address lookups).
        await recordClicks(single, [
          click(program, p1.code, { vid: 'ahead1', ipHash: 'ip9' }),
          click(program, p1.code, { ipHash: 'ip9' }),
          click(program, p1.code, { vid: 'ahead2', ipHash: 'ip9' }),
        ]);
        const after = await probes();
        const now = new Date();
        const month = (offset: number) => {
          const at = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1));
          return `clicks_m${at.getUTCFullYear()}${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
        };
        const probed = (partition: string) => (after[partition] ?? 0) - (before[partition] ?? 0);
        expect(Object.keys(after)).toEqual(expect.arrayContaining([month(0), month(1), month(2), 'clicks_default']));
        expect(probed(month(0))).toBeGreaterThan(0);
        expect(probed(month(2))).toBe(0);
        // The lookups reach up to tomorrow: next month's partition too on a month's last day.
        const lastDay = new Date(now.getTime() + 86_400_000).getUTCMonth() !== now.getUTCMonth();
        if (!lastDay) expect(probed(month(1))).toBe(0);
      } finally {
        await single.destroy();
      }
    },
  );
});
