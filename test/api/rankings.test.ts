/**
 * The leaderboard's order kept ahead for large programs (leaderboard_rankings): the
 * worker's pass ranks the last 7, 30 and 90 days by every sort for programs with enough
 * active referrers; a page of such a range, highest first, reads its order from there
 * and its figures live, says when it was ranked, and falls back to ranking at the
 * request for any other range, order, a stale or yesterday's ranking, or a page past it.
 */
import { randomUUID } from 'node:crypto';
import { applyStats, type StatsDelta } from '../../collector/src/domain/rollups.ts';
import { RANKED_TOP, refreshRankings } from '../../collector/src/domain/reports.ts';
import { loadConfig } from '../../collector/src/config.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ParticipantResponse, ReportReferrersResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture } from '../helpers/factories.ts';
import { DAY_MS } from '../helpers/rows.ts';
import { expectOk } from '../helpers/steps.ts';

const today = () => new Date().toISOString().slice(0, 10);
const addDays = (day: string, days: number) => new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
/** The last `days` days, today included. */
const last = (days: number) => `from=${addDays(today(), -(days - 1))}&to=${today()}`;

describe.each(DATABASES)('leaderboard rankings kept ahead (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;
  let program: ProgramFixture;
  let other: ProgramFixture;
  const people: Record<string, ParticipantResponse> = {};

  useTestApp(kind, (suite) => ({ testDb: t, api } = suite));

  const leaderboard = async (query: string, of = program) =>
    expectOk(await api.get<ReportReferrersResponse>(`/v1/reports/referrers?${query}`, { auth: of.secret }));
  const order = (body: ReportReferrersResponse) => body.data.map((row) => row.participant);
  const name = (who: string) => people[who]?.externalId;
  const stat = (who: string, daysAgo: number, counts: Partial<StatsDelta>): StatsDelta => ({
    programId: program.id,
    participantId: (people[who] as ParticipantResponse).id,
    at: new Date(Date.now() - daysAgo * DAY_MS),
    ...counts,
  });

  beforeAll(async () => {
    program = await buildProgram(api);
    other = await buildProgram(api);
    for (const who of ['p1', 'p2', 'p3', 'p4']) people[who] = await buildParticipant(api, program, { externalId: `${who}-${program.id}` });
    const lone = await buildParticipant(api, other);
    await applyStats(t.db, [
      stat('p1', 0, { clicks: 5, visitors: 5 }),
      stat('p2', 0, { clicks: 3, visitors: 3 }),
      stat('p2', 10, { clicks: 10, visitors: 9 }),
      stat('p3', 40, { clicks: 100, visitors: 90, signups: 2, clickedSignups: 2 }),
      stat('p4', 0, { clicks: 1, visitors: 1, signups: 1, clickedSignups: 1 }),
      { programId: other.id, participantId: lone.id, at: new Date(), clicks: 7, visitors: 7 },
    ]);
  });

  it('ranks only programs with enough referrers active over 90 days, and forgets those that fall below', async () => {
    expect(await refreshRankings(t.db, 5)).toEqual([]);
    expect(Number((await t.db('leaderboard_rankings').count({ n: '*' }))[0]?.n)).toBe(0);
    expect((await leaderboard(`${last(30)}&sort=clicks`)).rankedAt).toBeNull();

    expect(await refreshRankings(t.db, 4)).toEqual([program.id]);
    // Three ranges by five sorts.
    const kept = await t.db('leaderboard_rankings').where({ program_id: program.id }).select('days', 'sort');
    expect(kept).toHaveLength(15);
    expect(new Set(kept.map((row) => row.days))).toEqual(new Set([7, 30, 90]));
    expect((await leaderboard(`${last(30)}&sort=clicks`, other)).rankedAt).toBeNull();

    // Another process's worker passing within the half-interval leaves a fresh ranking be.
    const ranked = await t.db('leaderboard_rankings').where({ program_id: program.id }).max({ at: 'ranked_at' }).first();
    expect(await refreshRankings(t.db, 4, new Date(), 30_000)).toEqual([]);
    expect(await t.db('leaderboard_rankings').where({ program_id: program.id }).max({ at: 'ranked_at' }).first()).toEqual(ranked);
    expect(await refreshRankings(t.db, 4, new Date(Date.now() + 31_000), 30_000)).toEqual([program.id]);

    expect(await refreshRankings(t.db, 5)).toEqual([]);
    expect(await t.db('leaderboard_rankings').where({ program_id: program.id })).toEqual([]);
    expect((await leaderboard(`${last(30)}&sort=clicks`)).rankedAt).toBeNull();
  });

  it('serves the standard ranges in the kept order, the figures read live', async () => {
    const at = new Date();
    await refreshRankings(t.db, 4, at);
    const clicks30 = await leaderboard(`${last(30)}&sort=clicks`);
    expect(clicks30.rankedAt).toBe(at.toISOString());
    expect(order(clicks30)).toEqual([name('p2'), name('p1'), name('p4')]);
    expect(clicks30.data.map((row) => row.clicks)).toEqual([13, 5, 1]);
    expect(order(await leaderboard(`${last(7)}&sort=clicks`))).toEqual([name('p1'), name('p2'), name('p4')]);
    expect(order(await leaderboard(`${last(90)}&sort=clicks`))).toEqual([name('p3'), name('p2'), name('p1'), name('p4')]);
    // Ties (no signups) after the signed-up, by participant id as when ranked at the request.
    const bySignups = await leaderboard(`${last(30)}&sort=signups`);
    expect(bySignups.rankedAt).toBe(at.toISOString());
    const live = await leaderboard(`from=${addDays(today(), -29)}&to=${today()}&sort=signups&order=desc&limit=3&offset=0`);
    expect(order(bySignups)).toEqual(order(live));
    expect(order(bySignups)[0]).toBe(name('p4'));
    expect(order(await leaderboard(`${last(30)}&sort=conversionRate`))[0]).toBe(name('p4'));

    // Pages within the ranking.
    const first = await leaderboard(`${last(30)}&sort=clicks&limit=2`);
    expect(first).toMatchObject({ nextOffset: 2, rankedAt: at.toISOString() });
    expect(order(first)).toEqual([name('p2'), name('p1')]);
    const second = await leaderboard(`${last(30)}&sort=clicks&limit=2&offset=2`);
    expect(second).toMatchObject({ nextOffset: null, rankedAt: at.toISOString() });
    expect(order(second)).toEqual([name('p4')]);
  });

  it('keeps the order until the next pass; any other range or order is ranked at the request', async () => {
    const at = new Date();
    await refreshRankings(t.db, 4, at);
    await applyStats(t.db, [stat('p4', 0, { clicks: 50, visitors: 50 })]);

    const kept = await leaderboard(`${last(30)}&sort=clicks`);
    expect(kept.rankedAt).toBe(at.toISOString());
    expect(order(kept)).toEqual([name('p2'), name('p1'), name('p4')]);
    expect(kept.data.map((row) => row.clicks)).toEqual([13, 5, 51]);

    for (const query of [
      `from=${addDays(today(), -28)}&to=${today()}&sort=clicks`, // 29 days
      `from=${addDays(today(), -30)}&to=${addDays(today(), -1)}&sort=clicks`, // 30 days to yesterday
      `${last(30)}&sort=clicks&order=asc`,
    ]) {
      const body = await leaderboard(query);
      expect(body.rankedAt, query).toBeNull();
      expect(body.data.find((row) => row.participant === name('p4'))?.clicks ?? 0, query).toBe(
        query.includes(addDays(today(), -1)) ? 0 : 51,
      );
    }
    expect(order(await leaderboard(`from=${addDays(today(), -28)}&to=${today()}&sort=clicks`))).toEqual([
      name('p4'),
      name('p2'),
      name('p1'),
    ]);

    await refreshRankings(t.db, 4);
    expect(order(await leaderboard(`${last(30)}&sort=clicks`))).toEqual([name('p4'), name('p2'), name('p1')]);
  });

  it('does not serve a ranking that is stale or of another day', async () => {
    await refreshRankings(t.db, 4);
    await t.db('leaderboard_rankings').update({ ranked_at: t.db.raw(`ranked_at - interval '6 minutes'`) });
    expect((await leaderboard(`${last(30)}&sort=clicks`)).rankedAt).toBeNull();

    // Ranked yesterday at noon: its ranges end yesterday.
    const yesterday = new Date(`${addDays(today(), -1)}T12:00:00Z`);
    await refreshRankings(t.db, 4, yesterday);
    await t.db('leaderboard_rankings').update({ ranked_at: new Date() });
    expect((await leaderboard(`${last(30)}&sort=clicks`)).rankedAt).toBeNull();
  });

  it('ranks at the request a page past a full ranking', async () => {
    await refreshRankings(t.db, 4);
    // A full ranking holds RANKED_TOP referrers; pages past it are not in it.
    const ids = [...['p1', 'p2', 'p3', 'p4'].map((who) => people[who]?.id), ...Array.from({ length: RANKED_TOP - 4 }, () => randomUUID())];
    await t.db('leaderboard_rankings').where({ program_id: program.id, days: 30, sort: 'clicks' }).update({ participant_ids: ids });
    expect((await leaderboard(`${last(30)}&sort=clicks&limit=500`)).rankedAt).not.toBeNull();
    expect((await leaderboard(`${last(30)}&sort=clicks&limit=500&offset=1`)).rankedAt).toBeNull();
  });

  it('takes LEADERBOARD_RANKING_MIN_REFERRERS as a whole number of at least 1', () => {
    expect(loadConfig({}).rankingMinReferrers).toBe(2000);
    expect(loadConfig({ LEADERBOARD_RANKING_MIN_REFERRERS: '50' }).rankingMinReferrers).toBe(50);
    expect(() => loadConfig({ LEADERBOARD_RANKING_MIN_REFERRERS: '0' })).toThrow(/LEADERBOARD_RANKING_MIN_REFERRERS/);
  });
});
