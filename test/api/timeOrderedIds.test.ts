/**
 * New rows take time-ordered ids (migration time_ordered_ids, UUID version 7), so that a
 * signup's index entries go where the last ones went instead of to random pages: the
 * ids a program's customers get, through the real app, carry the time they were made,
 * in order, with the version and variant RFC 9562 gives them, and stay unguessable.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq } from '../helpers/factories.ts';
import { serverPurchase, serverSignup } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

/** The Unix milliseconds in a version 7 UUID's first 48 bits. */
const millisOf = (id: string) => Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);

describe.each(DATABASES)('time-ordered ids (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  it('participants, codes, conversions, referrals and rewards made through the app carry their time, in order', async () => {
    const p = await buildProgram(api, {
      settings: { rewardRules: [{ id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } }] },
    });
    const referrer = await buildParticipant(api, p);
    const customers: string[] = [];
    for (let n = 0; n < 5; n++) {
      const customer = uniq('customer-');
      customers.push(customer);
      await serverSignup(api, p, customer, referrer.code);
      await serverPurchase(api, p, customer, uniq('order-'), 1000);
    }

    for (const table of ['participants', 'codes', 'conversions', 'referrals', 'rewards']) {
      const rows = (await db(table).where({ program_id: p.id }).orderBy(['created_at', 'id']).select('id', 'created_at')) as Array<{
        id: string;
        created_at: Date;
      }>;
      expect(rows.length, table).toBeGreaterThanOrEqual(5);
      for (const row of rows) {
        expect(row.id, table).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        // The id's clock is the statement's wall clock; created_at is the transaction's start.
        expect(Math.abs(millisOf(row.id) - row.created_at.getTime()), table).toBeLessThan(60_000);
      }
      // Made one after another: in the order of their time.
      const millis = rows.map((row) => millisOf(row.id));
      expect(millis, table).toEqual([...millis].sort((a, b) => a - b));
    }
    // 74 random bits: two ids of one millisecond differ.
    const ids = (await db('participants').where({ program_id: p.id }).pluck('id')) as string[];
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uuid_v7(at) carries the time it is given, to the millisecond', async () => {
    const at = '2026-01-02T03:04:05.678Z';
    const { rows } = (await db.raw('select uuid_v7(?::timestamptz) as id', [at])) as { rows: Array<{ id: string }> };
    expect(millisOf(rows[0]!.id)).toBe(Date.parse(at));
  });
});
