/**
 * Attribution under concurrency, on PostgreSQL only (PGlite is one connection, so
 * nothing there runs at once): many simultaneous requests through the real app,
 * whose pool holds at most 10 connections. The database's unique constraints must
 * decide: one referral per customer, one row per event, whatever the interleaving.
 */
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '../../shared/schemas.ts';
import type { ConversionResultResponse } from '../../shared/responses.ts';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { newVid, buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { countRows } from '../helpers/rows.ts';

const REFERRERS = 50;
const POOL_MAX = 10;

describe.skipIf(!DATABASES.includes('postgres'))('concurrency (postgres)', () => {
  let db: Knex;
  let api: TestApp;
  let program: ProgramFixture;
  let referrers: Array<Awaited<ReturnType<typeof buildParticipant>>>;

  useTestApp('postgres', (suite) => ({ db, api } = suite), { poolMax: POOL_MAX });
  beforeAll(async () => {
    program = await buildProgram(api);
    referrers = [];
    for (let i = 0; i < REFERRERS; i++) referrers.push(await buildParticipant(api, program));
  });

  /** Rows of this program's in `table`. */
  const count = (table: string, where: Record<string, unknown> = {}) => countRows(db, table, { program_id: program.id, ...where });

  const participantId = async (externalId: string) =>
    ((await db('participants').where({ program_id: program.id, external_id: externalId }).first('id')) as { id: string } | undefined)?.id;

  /** Exactly one attributed answer, the rest existing, all 200 and naming the same referrer; returns it. */
  function expectOneWinner(replies: Array<Reply<ConversionResultResponse>>): string {
    for (const reply of replies) expect(reply.status, reply.text).toBe(200);
    const statuses = replies.map((reply) => reply.body.attribution.status);
    expect(statuses.filter((status) => status === 'attributed')).toHaveLength(1);
    expect(statuses.filter((status) => status === 'existing')).toHaveLength(replies.length - 1);
    const named = new Set(replies.map((reply) => reply.body.attribution.referrer));
    expect(named.size).toBe(1);
    const referrer = [...named][0] as string;
    expect(referrers.map((r) => r.externalId)).toContain(referrer);
    return referrer;
  }

  async function expectOneReferral(user: string, referrer: string) {
    const id = await participantId(user);
    expect(id).toBeDefined();
    const rows = (await db('referrals').where({ referred_id: id })) as Array<{ referrer_id: string }>;
    expect(rows).toHaveLength(1);
    const winner = referrers.find((r) => r.externalId === referrer);
    expect(rows[0]?.referrer_id).toBe(winner?.id);
    const stored = (await db('participants').where({ id }).first('referred_by')) as { referred_by: string };
    expect(stored.referred_by).toBe(winner?.id);
    expect(await count('participants', { external_id: user })).toBe(1);
  }

  it('runs on a pool of at most 10 connections', () => {
    expect((db.client as { pool: { max: number } }).pool.max).toBe(POOL_MAX);
  });

  it('50 simultaneous signups of one new customer with 50 referrers’ codes attribute exactly once', async () => {
    for (let round = 0; round < 2; round++) {
      const user = uniq('rush-');
      const referralsBefore = await count('referrals');
      const replies = await Promise.all(
        referrers.map((referrer, i) =>
          api.post<ConversionResultResponse>(
            '/v1/conversions',
            { type: 'signup', eventId: `${user}-evt-${i}`, externalId: user, referral: { code: referrer.code } },
            { auth: program.secret },
          ),
        ),
      );
      const referrer = expectOneWinner(replies);
      expect(await count('referrals')).toBe(referralsBefore + 1);
      await expectOneReferral(user, referrer);
      const id = await participantId(user);
      expect(await count('conversions', { participant_id: id, type: 'signup' })).toBe(1);
      const accepted = await db('decisions').where({ program_id: program.id, participant_id: id, reason: 'attributed' });
      expect(accepted).toHaveLength(1);
      // Every answer describes the one stored signup.
      expect(new Set(replies.map((reply) => reply.body.conversion.id)).size).toBe(1);
    }
  });

  it('50 simultaneous purchases of one new customer with 50 codes attribute exactly once, and store 50 purchases', async () => {
    const user = uniq('buyer-');
    const replies = await Promise.all(
      referrers.map((referrer, i) =>
        api.post<ConversionResultResponse>(
          '/v1/conversions',
          {
            type: 'purchase',
            eventId: `${user}-order-${i}`,
            externalId: user,
            amount: 100 + i,
            currency: 'USD',
            referral: { code: referrer.code },
          },
          { auth: program.secret },
        ),
      ),
    );
    const referrer = expectOneWinner(replies);
    await expectOneReferral(user, referrer);
    expect(await count('conversions', { participant_id: await participantId(user), type: 'purchase' })).toBe(REFERRERS);
  });

  it('50 simultaneous browser signups of one new customer with 50 codes attribute exactly once', async () => {
    const user = uniq('tabs-');
    const replies = await Promise.all(
      referrers.map((referrer, i) =>
        api.post('/v1/events', {
          key: program.publishable,
          type: 'signup',
          eventId: `${user}-evt-${i}`,
          vid: `${user}-vid-${i}`.replace(/[^A-Za-z0-9_-]/g, ''),
          code: referrer.code,
          user: { id: user },
        }),
      ),
    );
    for (const reply of replies) expect(reply.status, reply.text).toBe(202);
    const id = await participantId(user);
    const rows = (await db('referrals').where({ referred_id: id })) as Array<{ referrer_id: string }>;
    expect(rows).toHaveLength(1);
    expect(referrers.map((r) => r.id)).toContain(rows[0]?.referrer_id);
    expect(await count('conversions', { participant_id: id, type: 'signup' })).toBe(1);
  });

  it('20 simultaneous retries of one event store it once and all give the first answer', async () => {
    const user = uniq('retry-');
    const body = { type: 'signup', eventId: `${user}-evt`, externalId: user, referral: { code: referrers[0]?.code } };
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => api.post<ConversionResultResponse>('/v1/conversions', body, { auth: program.secret })),
    );
    for (const reply of replies) expect(reply.status, reply.text).toBe(200);
    const first = replies[0]?.body;
    for (const reply of replies) expect(reply.body).toEqual(first);
    expect(first?.attribution).toEqual({ status: 'attributed', referrer: referrers[0]?.externalId });
    expect(await count('conversions', { event_id: `${user}-evt` })).toBe(1);
    expect(await count('referrals', { referred_id: await participantId(user) })).toBe(1);
  });

  it('simultaneous requests with one Idempotency-Key run once', async () => {
    const user = uniq('idem-');
    const body = { type: 'signup', eventId: `${user}-evt`, externalId: user, referral: { code: referrers[1]?.code } };
    const replies = await Promise.all(
      Array.from({ length: 10 }, () =>
        api.post<ConversionResultResponse>('/v1/conversions', body, { auth: program.secret, headers: { 'idempotency-key': user } }),
      ),
    );
    const fresh = replies.filter((reply) => reply.status === 200 && reply.headers.get('idempotent-replayed') === null);
    expect(fresh).toHaveLength(1);
    for (const reply of replies) {
      if (reply === fresh[0]) continue;
      if (reply.status === 200) {
        expect(reply.headers.get('idempotent-replayed')).toBe('true');
        expect(reply.body).toEqual(fresh[0]?.body);
      } else {
        expect(reply.status).toBe(409);
        expect((reply.body as unknown as ErrorBody).error.code).toBe('idempotency_in_progress');
      }
    }
    expect(await count('conversions', { event_id: `${user}-evt` })).toBe(1);
    // Once the first has finished, the key replays.
    const later = await api.post<ConversionResultResponse>('/v1/conversions', body, {
      auth: program.secret,
      headers: { 'idempotency-key': user },
    });
    expect(later.status).toBe(200);
    expect(later.headers.get('idempotent-replayed')).toBe('true');
    expect(later.body).toEqual(fresh[0]?.body);
  });

  it('two people signing up at once with each other’s code do not form a cycle', async () => {
    const pairs = await Promise.all(
      Array.from({ length: 10 }, async () => [await buildParticipant(api, program), await buildParticipant(api, program)] as const),
    );
    const replies = await Promise.all(
      pairs.flatMap(([a, b]) => [
        api.post<ConversionResultResponse>(
          '/v1/conversions',
          { type: 'signup', eventId: uniq('x-'), externalId: a.externalId, referral: { code: b.code } },
          { auth: program.secret },
        ),
        api.post<ConversionResultResponse>(
          '/v1/conversions',
          { type: 'signup', eventId: uniq('y-'), externalId: b.externalId, referral: { code: a.code } },
          { auth: program.secret },
        ),
      ]),
    );
    for (const reply of replies) expect(reply.status, reply.text).toBe(200);
    const cycles: string[] = [];
    pairs.forEach(([a], i) => {
      const [ab, ba] = [replies[2 * i]?.body.attribution, replies[2 * i + 1]?.body.attribution];
      if (ab?.status === 'attributed' && ba?.status === 'attributed') cycles.push(a.externalId);
      else expect([ab?.reason, ba?.reason]).toContain('referral_cycle');
    });
    const mutual = await db.raw(
      `select count(*)::int as n from referrals r1 join referrals r2 on r1.referrer_id = r2.referred_id and r1.referred_id = r2.referrer_id where r1.program_id = ?`,
      [program.id],
    );
    expect({ pairsAttributedBothWays: cycles.length, mutualReferralRows: Number(mutual.rows[0]?.n) }).toEqual({
      pairsAttributedBothWays: 0,
      mutualReferralRows: 0,
    });
  });

  it('stores simultaneous identical clicks (same visitor, same code) once', async () => {
    const referrer = referrers[2];
    const visitor = newVid();
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => api.post('/v1/clicks', { key: program.publishable, code: referrer?.code, vid: visitor })),
    );
    for (const reply of replies) expect(reply.status).toBe(202);
    expect(await countRows(db, 'clicks', { vid: visitor })).toBe(1); // a visitor id of its own: the program's clicks
  });
});
