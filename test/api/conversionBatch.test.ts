/**
 * Server conversions are group-committed (domain/conversions.ts recordConversionBatch):
 * one transaction per batch, and when one conversion fails the batch is recorded
 * again one by one, so only that one fails. On both databases.
 */
import { describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { recordConversionBatch, type BatchedConversion, type ConversionInput } from '../../collector/src/domain/conversions.ts';
import { findProgram, type ProgramRow } from '../../collector/src/domain/programs.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq } from '../helpers/factories.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';
import type { TestApp } from '../helpers/app.ts';

describe.each(DATABASES)('server conversion batches (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite: Suite) => ({ db, api } = suite));

  async function setup() {
    const fixture = await buildProgram(api);
    const referrer = await buildParticipant(api, fixture);
    const program = (await findProgram(db, fixture.id)) as ProgramRow;
    const signup = (externalId: string, extra: Partial<ConversionInput> = {}): BatchedConversion => ({
      program,
      input: { type: 'signup', eventId: uniq('evt-'), externalId, code: referrer.code, verified: true, source: 'server', ...extra },
    });
    return { fixture, referrer, program, signup };
  }

  const referralsOf = (programId: string) => db('referrals').where({ program_id: programId }).count({ n: '*' }).first();

  it('records a batch in order: one referral per customer, a repeated event replays its answer, a second signup is a duplicate', async () => {
    const { program, referrer, signup } = await setup();
    const first = signup('ann');
    const outcomes = await recordConversionBatch(db, [first, signup('bob'), { ...first }, signup('ann')]);
    const ok = outcomes.map((outcome) => ('ok' in outcome ? outcome.ok : outcome.error));
    expect(ok[0]).toMatchObject({ attribution: { status: 'attributed', referrer: referrer.externalId } });
    expect(ok[1]).toMatchObject({ attribution: { status: 'attributed', referrer: referrer.externalId } });
    expect(ok[2]).toEqual(ok[0]); // the same event: the first answer again
    expect(ok[3]).toMatchObject({ attribution: { status: 'existing', referrer: referrer.externalId } });
    expect(await referralsOf(program.id)).toEqual({ n: 2 });
    const [stats] = await db('daily_stats').where({ program_id: program.id, participant_id: referrer.id }).select('signups');
    expect(stats).toEqual({ signups: 2 });
  });

  it('fails only the conversion that cannot be stored: the rest of its batch is recorded', async () => {
    const { program, signup } = await setup();
    // A currency the database refuses (the API would answer 422 first): this one fails.
    const bad = signup('cat', { type: 'purchase', amount: 100, currency: 'TOOLONG' });
    const outcomes = await recordConversionBatch(db, [signup('dan'), bad, signup('eve')]);
    expect(outcomes.map((outcome) => 'ok' in outcome)).toEqual([true, false, true]);
    expect(await referralsOf(program.id)).toEqual({ n: 2 });
    // Nothing of the failed one stays, not even its customer.
    expect(await db('participants').where({ program_id: program.id, external_id: 'cat' }).first()).toBeUndefined();
    const stored = await db('conversions').where({ program_id: program.id }).count({ n: '*' }).first();
    expect(stored).toEqual({ n: 2 });
  });

  it("opens and attributes a batch's new customers in one statement each, not one per customer", async () => {
    const { program, referrer, signup } = await setup();
    const statements: string[] = [];
    const onQuery = (query: { sql: string }) => statements.push(query.sql);
    db.on('query', onQuery);
    try {
      const outcomes = await recordConversionBatch(
        db,
        ['fay', 'gus', 'hal', 'ivy', 'jon'].map((id) => signup(id)),
      );
      expect(outcomes.map((outcome) => 'ok' in outcome && outcome.ok.attribution.status)).toEqual(Array(5).fill('attributed'));
    } finally {
      db.off('query', onQuery);
    }
    expect(statements.filter((sql) => sql.includes('insert into participants'))).toHaveLength(1);
    expect(statements.filter((sql) => sql.includes('insert into referrals'))).toHaveLength(1);
    // Each row is written once: the answers kept for replays go in a table of their own.
    expect(statements.filter((sql) => /update conversions/i.test(sql))).toEqual([]);
    expect(await referralsOf(program.id)).toEqual({ n: 5 });
    const [stats] = await db('daily_stats').where({ program_id: program.id, participant_id: referrer.id }).select('signups');
    expect(stats).toEqual({ signups: 5 });
  });

  it('judges customers of one batch in order, as one by one: the second with the same email is held', async () => {
    const { program, signup } = await setup();
    const outcomes = await recordConversionBatch(db, [
      signup('kim', { email: 'k.im+a@gmail.com' }),
      signup('lee'),
      signup('kim-again', { email: 'kim@googlemail.com' }),
    ]);
    expect(outcomes.every((outcome) => 'ok' in outcome)).toBe(true);
    const referrals = await db('referrals as r')
      .join('participants as p', 'p.id', 'r.referred_id')
      .where('r.program_id', program.id)
      .orderBy('p.external_id')
      .select('p.external_id', 'r.status', 'r.reason');
    expect(referrals).toEqual([
      { external_id: 'kim', status: 'attributed', reason: null },
      { external_id: 'kim-again', status: 'held', reason: 'duplicate_identity' },
      { external_id: 'lee', status: 'attributed', reason: null },
    ]);
  });

  it('keeps the conversions of one batch in their order in time: a purchase before the referral does not move with it (found by the batch property)', async () => {
    const { fixture, program, referrer, signup } = await setup();
    const friend = await buildParticipant(api, fixture);
    const browser = { verified: false, source: 'browser' } as const;
    const purchase = (extra: Partial<ConversionInput>) => signup('mo', { type: 'purchase', amount: 1000, currency: 'USD', ...extra });
    const outcomes = await recordConversionBatch(db, [
      purchase({ code: undefined, ...browser }), // unreferred: counted for nobody
      signup('mo', { code: referrer.code, ...browser }), // the browser's referral, to `referrer`
      purchase({ code: friend.code }), // the server names `friend`: the referral moves, with what came after it
    ]);
    expect(outcomes.map((outcome) => 'ok' in outcome && outcome.ok.attribution)).toMatchObject([
      { status: 'none' },
      { status: 'attributed', referrer: referrer.externalId },
      { status: 'attributed', referrer: friend.externalId },
    ]);
    const counts = await db('daily_stats')
      .where({ program_id: program.id })
      .groupBy('participant_id')
      .select('participant_id', db.raw('sum(signups)::int as signups'), db.raw('sum(purchases)::int as purchases'));
    expect(Object.fromEntries(counts.map((row) => [row.participant_id, [row.signups, row.purchases]]))).toEqual({
      [referrer.id]: [0, 0],
      [friend.id]: [1, 1],
    });
  });

  it('tells apart times a microsecond apart: a signup the server confirms after a referral made later in the batch earns nothing (found by the batch property)', async () => {
    const { fixture, program, signup } = await setup();
    const rules = [{ id: 'welcome', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 500, currency: 'USD' } }];
    const rewarding = { ...program, settings: { ...program.settings, rewardRules: rules } } as ProgramRow;
    const item = (conversion: BatchedConversion): BatchedConversion => ({ ...conversion, program: rewarding });
    const friend = await buildParticipant(api, fixture);
    const outcomes = await recordConversionBatch(db, [
      item(signup('nan', { code: undefined, verified: false, source: 'browser' })), // unreferred
      item(signup('nan', { type: 'purchase', amount: 1000, currency: 'USD', code: friend.code })), // makes the referral, after the signup
      item(signup('nan')), // the server's signup, under another event id: confirms the browser's
    ]);
    expect(outcomes.map((outcome) => 'ok' in outcome && outcome.ok.rewards)).toEqual([[], [], []]);
    expect(await db('rewards').where({ program_id: program.id })).toEqual([]);
  });

  it('judges a code by its owner as the batch left them: an email given earlier in the batch makes a self-referral (found by the batch property)', async () => {
    const { fixture, signup } = await setup();
    const kim = await buildParticipant(api, fixture, { email: 'kim@example.com' });
    const friend = await buildParticipant(api, fixture);
    const outcomes = await recordConversionBatch(db, [
      signup(friend.externalId, { code: undefined, email: 'Kim@example.com' }), // friend's email, given now: Kim's
      signup(kim.externalId, { type: 'purchase', amount: 1000, currency: 'USD', code: friend.code }), // opened with the next one
      signup('zed'),
    ]);
    expect(outcomes.map((outcome) => 'ok' in outcome && outcome.ok.attribution)).toMatchObject([
      { status: 'none' },
      { status: 'rejected', reason: 'self_referral' },
      { status: 'attributed' },
    ]);
  });

  it('attributes concurrent signups over HTTP exactly once each, and a retry replays the stored answer', async () => {
    const { fixture, program, referrer } = await setup();
    const bodies = Array.from({ length: 40 }, (_, i) => ({
      type: 'signup',
      eventId: `batch-${i}`,
      externalId: `customer-${i % 20}`,
      referral: { code: referrer.code },
    }));
    const replies = await Promise.all(bodies.map((body) => api.post('/v1/conversions', body, { auth: fixture.secret })));
    expect(replies.map((reply) => reply.status)).toEqual(Array(40).fill(200));
    expect(await referralsOf(program.id)).toEqual({ n: 20 });
    const statuses = replies.map((reply) => reply.body.attribution.status as string);
    expect(statuses.filter((status) => status === 'attributed')).toHaveLength(20);
    expect(statuses.filter((status) => status === 'existing')).toHaveLength(20);
    const again = await api.post('/v1/conversions', bodies[7], { auth: fixture.secret });
    expect(again.body).toEqual(replies[7]?.body);
  });
});
