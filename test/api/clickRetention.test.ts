/**
 * Clicks partitioned by month, on every database: partitions are made ahead, rows
 * outside them wait in the default partition and move when their month is made,
 * CLICK_RETENTION_DAYS drops whole old partitions (no DELETE), and everything that
 * does not read raw clicks — rollups, referrals, reports, balances — stays exactly as
 * it was. A retention shorter than a program's attribution window is refused.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../collector/src/config.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';
import { dropExpiredClicks, ensureClickPartitions, longestWindowDays } from '../../collector/src/storage/clickPartitions.ts';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq } from '../helpers/factories.ts';
import { useTestApp } from '../helpers/suite.ts';

const DAY_MS = 86_400_000;

describe.each(DATABASES)('click partitions and retention (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let suite: { startApp: (env: Record<string, string>) => Promise<TestApp> };
  useTestApp(kind, (opened) => {
    ({ db, api } = opened);
    suite = opened;
  });

  const partitions = async () =>
    (
      (
        await db.raw(
          `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'clicks'::regclass order by 1`,
        )
      ).rows as Array<{ name: string }>
    ).map((row) => row.name);
  const monthName = (at: Date) => `clicks_m${at.getUTCFullYear()}${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
  const rowsIn = async (table: string) => Number((await db(table).count({ n: '*' }))[0]?.n);

  it('has this month and the next two, plus the default partition', async () => {
    const now = new Date();
    const names = await partitions();
    for (let ahead = 0; ahead <= 2; ahead++)
      expect(names).toContain(monthName(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + ahead, 1))));
    expect(names).toContain('clicks_default');
    // Partitions are made once: a second call makes none.
    expect(await ensureClickPartitions(db)).toEqual([]);
  });

  it('keeps rows outside the partitions in the default one, and moves them when their month is made', async () => {
    const p = await buildProgram(api);
    const referrer = await buildParticipant(api, p);
    for (let i = 0; i < 3; i++)
      expect((await api.post('/v1/clicks', { key: p.publishable, code: referrer.code, vid: uniq('vid_') })).status).toBe(202);
    // Backdated 400 days: no partition holds that month, so the rows move to the default one.
    const old = new Date(Date.now() - 400 * DAY_MS);
    const theirs = { code_id: ((await db('codes').where({ code: referrer.code }).first('id')) as { id: string }).id };
    await db('clicks').where(theirs).update({ created_at: old });
    expect(await db('clicks_default').where(theirs)).toHaveLength(3);
    const made = await ensureClickPartitions(db, { from: old });
    expect(made).toContain(monthName(old));
    expect(await db('clicks_default').where(theirs)).toHaveLength(0);
    expect(await db(monthName(old)).where(theirs)).toHaveLength(3);
  });

  it('drops whole partitions older than the retention; rollups, referrals and reports stay', async () => {
    const p = await buildProgram(api, {
      settings: { rewardRules: [{ id: 'w', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 500, currency: 'USD' } }] },
    });
    const referrer = await buildParticipant(api, p);
    const vid = uniq('vid_');
    expect((await api.post('/v1/clicks', { key: p.publishable, code: referrer.code, vid })).body).toEqual({ valid: true });
    const signup = await api.post(
      '/v1/conversions',
      { type: 'signup', eventId: uniq('e'), externalId: uniq('u'), referral: { vid } },
      { auth: p.secret },
    );
    expect(signup.body.attribution.status).toBe('attributed');
    const before = {
      summary: (await api.get('/v1/reports/summary', { auth: p.secret })).body,
      referrer: (await api.get(`/v1/participants/${referrer.externalId}`, { auth: p.secret })).body,
      referrals: (await api.get('/v1/referrals', { auth: p.secret })).body,
    };
    expect(before.summary.clicks).toBe(1);

    // A year on: this month's partition is wholly older than a 90-day retention.
    const later = new Date(Date.now() + 365 * DAY_MS);
    const thisMonth = monthName(new Date());
    const dropped = await dropExpiredClicks(db, 90, later);
    expect(dropped).toContain(thisMonth);
    expect(await partitions()).not.toContain(thisMonth);
    expect(await clicksOf(db, p.id)).toHaveLength(0);

    expect((await api.get('/v1/reports/summary', { auth: p.secret })).body).toEqual(before.summary);
    expect((await api.get(`/v1/participants/${referrer.externalId}`, { auth: p.secret })).body).toEqual(before.referrer);
    expect((await api.get('/v1/referrals', { auth: p.secret })).body).toEqual(before.referrals);
    // Clicks still arrive and count (this month's partition comes back, or the default takes them).
    await ensureClickPartitions(db);
    expect((await api.post('/v1/clicks', { key: p.publishable, code: referrer.code, vid: uniq('vid_') })).body).toEqual({ valid: true });
    expect(await rowsIn('clicks')).toBeGreaterThan(0);
  });

  it('refuses an attribution window longer than the retention, with a message that says why', async () => {
    const retained = await suite.startApp({ CLICK_RETENTION_DAYS: '45' });
    // The default window (60 days) is too long for it: creating says so too.
    const refused = await retained.post(
      '/v1/programs',
      { name: 'R', origins: ['https://r.example'], landingUrl: 'https://r.example/' },
      { auth: ADMIN_TOKEN },
    );
    expect(refused.status).toBe(422);
    expect(refused.body.error.fields['settings.windowDays']).toMatch(/CLICK_RETENTION_DAYS/);
    const p = await buildProgram(retained, { settings: { windowDays: 30 } });
    const reply = await retained.patch('/v1/program', { settings: { windowDays: 60 } }, { auth: p.secret });
    expect(reply.status).toBe(422);
    expect(reply.body.error.fields['settings.windowDays']).toMatch(/at most 45: clicks are kept 45 days \(CLICK_RETENTION_DAYS\)/);
    expect((await retained.patch('/v1/program', { settings: { windowDays: 30 } }, { auth: p.secret })).status).toBe(200);
    expect(await longestWindowDays(db)).toBeGreaterThanOrEqual(30);
  });
});

describe('CLICK_RETENTION_DAYS', () => {
  it.each(['0', '-3', '1.5', 'forever'])('refuses %s', (value) => {
    expect(() => loadConfig({ CLICK_RETENTION_DAYS: value })).toThrow(/CLICK_RETENTION_DAYS/);
  });
  it('takes whole days, and is unset by default (clicks kept)', () => {
    expect(loadConfig({ CLICK_RETENTION_DAYS: '400' }).clickRetentionDays).toBe(400);
    expect(loadConfig({}).clickRetentionDays).toBeUndefined();
  });
});
