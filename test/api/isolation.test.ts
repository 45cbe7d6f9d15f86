/**
 * Tenant isolation, on every database: program B's secret key sees nothing of
 * program A through any secret-key endpoint of the OpenAPI document (404 for A's
 * ids, empty lists, zero reports, CSVs with only the header) and changes nothing
 * of A; a publishable key (or the operator token) is refused on the server API;
 * A's publishable key with B's code is { valid: false }; the server API answers
 * no CORS header, even for a program's own origin.
 */
import Stripe from 'stripe';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApi } from '../../collector/src/openapi.ts';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { newVid, buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectOk } from '../helpers/steps.ts';

const ORIGIN_A = 'https://a-shop.example';
const ORIGIN_B = 'https://b-shop.example';
/** A page of A's that is not in A's origins: its click is refused and recorded for A. */
const STRAY_A = 'https://stray.a-shop.example';

/** Every operation of the served document that takes a secret key. */
const SECRET_OPERATIONS = Object.entries(buildOpenApi('http://collector.test').paths).flatMap(([path, operations]) =>
  Object.entries(operations as Record<string, { security?: Array<Record<string, string[]>> }>)
    .filter(([, op]) => op.security?.some((scheme) => 'secretKey' in scheme))
    .map(([method]) => `${method.toUpperCase()} ${path}`),
);

type Participant = Awaited<ReturnType<typeof buildParticipant>>;

interface ProgramA {
  fixture: ProgramFixture;
  referrer: Participant;
  /** A participant that B will also create under the same externalId. */
  shared: Participant;
  buyer: string;
  signupEventId: string;
  orderEventId: string;
  rewardIds: string[];
  keyIds: string[];
  vid: string;
  /** A payout run of A's, still pending. */
  payoutId: string;
  /** A promo code of A's referrer. */
  promoCodeId: string;
}

describe.each(DATABASES)('tenant isolation (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let a: ProgramA;
  let b: ProgramFixture;
  let bParticipant: Participant;
  /** A's view of itself before B did anything, to compare with afterwards. */
  let aBefore: Record<string, unknown>;

  const asA = (path: string) => api.get(path, { auth: a.fixture.secret });
  const asB = (path: string) => api.get(path, { auth: b.secret });

  /** Everything A can see through its own key. */
  async function snapshotA() {
    const paths = [
      '/v1/program',
      `/v1/participants/${encodeURIComponent(a.referrer.externalId)}`,
      `/v1/participants/${encodeURIComponent(a.shared.externalId)}`,
      '/v1/referrals',
      '/v1/rewards',
      '/v1/decisions?limit=500',
      '/v1/webhooks/deliveries',
      '/v1/reports/summary',
      '/v1/reports/referrers',
      '/v1/keys',
      '/v1/payouts',
      '/v1/exports/referrals.csv',
      '/v1/exports/rewards.csv',
      '/v1/exports/clicks.csv',
      '/v1/program/refused-origins',
      '/v1/rewards/totals',
      '/v1/emails',
      `/v1/participants/${encodeURIComponent(a.referrer.externalId)}/promo-codes`,
    ];
    const out: Record<string, unknown> = {};
    for (const path of paths) out[path] = expectOk(await asA(path));
    return out;
  }

  useTestApp(kind, (suite) => ({ db, api } = suite));
  beforeAll(async () => {
    const settings = {
      rewardRules: [
        { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
        { id: 'purchase-cash', on: 'purchase', to: 'both', reward: { kind: 'cash', percent: 10 } },
      ],
      webhookUrl: 'https://hooks.a-shop.example/referrals',
      stripe: { webhookSecret: 'whsec_program_a_secret' },
      emails: { from: 'A Shop <hello@a-shop.example>', on: { referral: true } },
    };
    const fixture = await buildProgram(api, { origins: [ORIGIN_A], landingUrl: `${ORIGIN_A}/join`, settings });
    b = await buildProgram(api, {
      origins: [ORIGIN_B],
      landingUrl: `${ORIGIN_B}/join`,
      settings: { stripe: { webhookSecret: 'whsec_program_b_secret' } },
    });
    bParticipant = await buildParticipant(api, b, { externalId: uniq('b-user-') });

    // Program A: a referrer, clicks, a referred signup and purchase (rewards, webhooks), another participant.
    const referrer = await buildParticipant(api, fixture, { externalId: uniq('a-referrer-'), email: `${uniq()}@a.example`, name: 'Ann A' });
    const shared = await buildParticipant(api, fixture, { externalId: uniq('shared-') });
    const vid = newVid();
    expect(
      expectOk(
        await api.post(
          '/v1/clicks',
          { key: fixture.publishable, code: referrer.code, vid, url: `${ORIGIN_A}/?ref=${referrer.code}` },
          { headers: { origin: ORIGIN_A } },
        ),
        202,
      ),
    ).toEqual({ valid: true });
    const buyer = uniq('a-buyer-');
    const signupEventId = uniq('a-signup-');
    const orderEventId = uniq('a-order-');
    const signup = expectOk(
      await api.post(
        '/v1/conversions',
        { type: 'signup', eventId: signupEventId, externalId: buyer, referral: { code: referrer.code, vid } },
        { auth: fixture.secret },
      ),
    );
    expect(signup.attribution.status).toBe('attributed');
    expectOk(
      await api.post(
        '/v1/conversions',
        { type: 'purchase', eventId: orderEventId, externalId: buyer, amount: 10_000, currency: 'USD' },
        { auth: fixture.secret },
      ),
    );
    const rewards = expectOk(await api.get('/v1/rewards', { auth: fixture.secret })).data as Array<{ id: string }>;
    expect(rewards.length).toBeGreaterThanOrEqual(3);
    const keys = expectOk(await api.get('/v1/keys', { auth: fixture.secret })).data as Array<{ id: string }>;
    const payout = expectOk(await api.post('/v1/payouts', {}, { auth: fixture.secret }), 201) as { id: string };
    // A click from a page of A's outside its origins is refused and recorded for A.
    const stray = await api.post('/v1/clicks', { key: fixture.publishable, code: referrer.code, vid }, { headers: { origin: STRAY_A } });
    expect(stray.status, stray.text).toBeGreaterThanOrEqual(400);
    const promo = expectOk(
      await api.post(
        `/v1/participants/${encodeURIComponent(referrer.externalId)}/promo-codes`,
        { provider: 'paddle', id: 'dsc_a_isolation', code: 'ANNA10' },
        { auth: fixture.secret },
      ),
      201,
    ) as { id: string };
    a = {
      fixture,
      referrer,
      shared,
      buyer,
      signupEventId,
      orderEventId,
      rewardIds: rewards.map((r) => r.id),
      keyIds: keys.map((k) => k.id),
      vid,
      payoutId: payout.id,
      promoCodeId: promo.id,
    };

    aBefore = await snapshotA();
    // A really has data everywhere B will look.
    expect((aBefore['/v1/referrals'] as { data: unknown[] }).data.length).toBe(1);
    expect(JSON.stringify(aBefore['/v1/program/refused-origins'])).toContain(STRAY_A);
    expect((aBefore['/v1/rewards/totals'] as { data: unknown[] }).data.length).toBeGreaterThan(0);
    expect((aBefore['/v1/webhooks/deliveries'] as { data: unknown[] }).data.length).toBeGreaterThan(0);
    expect((aBefore['/v1/reports/summary'] as { clicks: number; signups: number }).signups).toBe(1);
    for (const csv of ['/v1/exports/referrals.csv', '/v1/exports/rewards.csv', '/v1/exports/clicks.csv'])
      expect(String(aBefore[csv]).trim().split('\n').length).toBeGreaterThan(1);
  });

  /** One check per secret-key operation: what B's key gets when it reaches for A. */
  const checks: Record<string, () => Promise<void>> = {
    'GET /v1/program': async () => {
      const reply = expectOk(await asB('/v1/program'));
      expect(reply.program.id).toBe(b.id);
      expect(JSON.stringify(reply)).not.toContain(ORIGIN_A);
    },
    'PATCH /v1/program': async () => {
      const reply = await api.patch('/v1/program', { name: 'Renamed by B', settings: { cookieDays: 7 } }, { auth: b.secret });
      expect(reply.status, reply.text).toBe(200);
      expect(reply.body.program.id).toBe(b.id);
      expect(expectOk(await asA('/v1/program')).program).toEqual((aBefore['/v1/program'] as { program: unknown }).program);
    },
    'POST /v1/participants': async () => {
      // Same externalId as one of A's: B gets its own participant, never A's.
      const reply = await api.post('/v1/participants', { externalId: a.shared.externalId }, { auth: b.secret });
      expect(reply.status, reply.text).toBe(201);
      expect(reply.body.id).not.toBe(a.shared.id);
      expect(reply.body.code).not.toBe(a.shared.code);
      // A vanity code that A's participant holds is taken across the collector: B cannot claim it.
      const vanity = await api.post('/v1/participants', { externalId: uniq('b-'), code: a.referrer.code }, { auth: b.secret });
      expect(vanity.status, vanity.text).toBe(409);
    },
    'GET /v1/participants/{externalId}': async () => {
      for (const externalId of [a.referrer.externalId, a.buyer]) {
        const reply = await asB(`/v1/participants/${encodeURIComponent(externalId)}`);
        expect(reply.status, externalId).toBe(404);
        expect(reply.body).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
      }
    },
    'POST /v1/conversions': async () => {
      // A's customer, A's event id and A's referral code, reported with B's key.
      const reply = await api.post(
        '/v1/conversions',
        { type: 'signup', eventId: a.signupEventId, externalId: a.buyer, referral: { code: a.referrer.code, vid: a.vid } },
        { auth: b.secret },
      );
      expect(reply.status, reply.text).toBe(200);
      expect(reply.body.attribution.status).not.toBe('attributed');
      expect(reply.body.attribution.status).not.toBe('existing');
      expect(reply.body.attribution.referrer ?? null).toBeNull();
      expect(reply.body.rewards).toEqual([]);
      const stored = (await db('conversions').where({ event_id: a.signupEventId, type: 'signup' }).select('id', 'program_id')) as Array<{
        id: string;
        program_id: string;
      }>;
      expect(stored.map((row) => row.program_id).sort()).toEqual([a.fixture.id, b.id].sort());
      expect(reply.body.conversion.id).toBe(stored.find((row) => row.program_id === b.id)?.id);
    },
    'GET /v1/referrals': async () => {
      expect(expectOk(await asB('/v1/referrals')).data).toEqual([]);
      expect(expectOk(await asB(`/v1/referrals?referrer=${encodeURIComponent(a.referrer.externalId)}`)).data).toEqual([]);
    },
    'GET /v1/decisions': async () => {
      const decisions = expectOk(await asB('/v1/decisions?limit=500')).data as Array<Record<string, unknown>>;
      const text = JSON.stringify(decisions);
      for (const id of [a.referrer.externalId, a.shared.externalId, a.buyer, a.orderEventId]) expect(text).not.toContain(id);
      expect(expectOk(await asB(`/v1/decisions?participant=${encodeURIComponent(a.referrer.externalId)}`)).data).toEqual([]);
    },
    'POST /v1/refunds': async () => {
      const reply = await api.post('/v1/refunds', { eventId: uniq('b-refund-'), purchaseEventId: a.orderEventId }, { auth: b.secret });
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    },
    'GET /v1/rewards': async () => {
      expect(expectOk(await asB('/v1/rewards')).data).toEqual([]);
      expect(expectOk(await asB(`/v1/rewards?participant=${encodeURIComponent(a.referrer.externalId)}`)).data).toEqual([]);
    },
    'POST /v1/rewards/{id}/approve': async () => expectRewardsUntouched('approve'),
    'POST /v1/rewards/{id}/revoke': async () => expectRewardsUntouched('revoke'),
    'POST /v1/rewards/{id}/pay': async () => expectRewardsUntouched('pay'),
    'GET /v1/webhooks/deliveries': async () => {
      expect(expectOk(await asB('/v1/webhooks/deliveries')).data).toEqual([]);
    },
    'GET /v1/reports/summary': async () => {
      const summary = expectOk(await asB('/v1/reports/summary'));
      expect(summary).toMatchObject({
        clicks: 0,
        signups: 0,
        purchases: 0,
        revenue: {},
        conversionRate: 0,
        rewards: { pending: {}, approved: {}, paid: {} },
      });
    },
    'GET /v1/reports/referrers': async () => {
      const referrers = expectOk(await asB('/v1/reports/referrers'));
      expect(JSON.stringify(referrers)).not.toContain(a.referrer.externalId);
      expect(referrers.data).toEqual([]);
      // …while A's own leaderboard has its referrer.
      expect((aBefore['/v1/reports/referrers'] as { data: Array<{ participant: string }> }).data.map((row) => row.participant)).toContain(
        a.referrer.externalId,
      );
    },
    'GET /v1/reports/timeseries': async () => {
      const series = expectOk(await asB('/v1/reports/timeseries?interval=day'));
      expect(series.points.length).toBeGreaterThan(0);
      for (const point of series.points as Array<Record<string, unknown>>) {
        for (const [key, value] of Object.entries(point))
          if (typeof value === 'number') expect(value, `${String(point.date)} ${key}`).toBe(0);
      }
    },
    'GET /v1/exports/referrals.csv': async () => expectHeaderOnly('/v1/exports/referrals.csv'),
    'GET /v1/exports/rewards.csv': async () => expectHeaderOnly('/v1/exports/rewards.csv'),
    'GET /v1/exports/clicks.csv': async () => expectHeaderOnly('/v1/exports/clicks.csv'),
    'GET /v1/keys': async () => {
      const keys = expectOk(await asB('/v1/keys')).data as Array<{ id: string; prefix: string }>;
      expect(keys.length).toBeGreaterThanOrEqual(2);
      for (const key of keys) expect(a.keyIds).not.toContain(key.id);
      const text = JSON.stringify(keys);
      expect(text).not.toContain(a.fixture.secret.slice(0, 10));
      expect(text).not.toContain(a.fixture.publishable.slice(0, 10));
    },
    'POST /v1/keys': async () => {
      const reply = await api.post('/v1/keys', { kind: 'secret' }, { auth: b.secret });
      expect(reply.status, reply.text).toBe(201);
      const aKeys = expectOk(await asA('/v1/keys')).data as Array<{ id: string }>;
      expect(aKeys.map((k) => k.id)).not.toContain(reply.body.key.id);
      expect(aKeys.map((k) => k.id).sort()).toEqual([...a.keyIds].sort());
    },
    'DELETE /v1/participants/{externalId}': async () => {
      // B cannot erase A's people (the final check compares all of A with before). Only
      // the referrer: other checks give B people of its own under A's other externalIds.
      for (const externalId of [a.referrer.externalId]) {
        const reply = await api.request('DELETE', `/v1/participants/${encodeURIComponent(externalId)}`, undefined, { auth: b.secret });
        expect(reply.status, externalId).toBe(404);
        expect(reply.body).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
      }
      expect(expectOk(await asA(`/v1/participants/${encodeURIComponent(a.referrer.externalId)}`))).toMatchObject({
        externalId: a.referrer.externalId,
      });
    },
    'POST /v1/participants/{externalId}/portal': async () => {
      // B gets no portal link to A's people (a link would read their figures and rewards).
      const reply = await api.post(`/v1/participants/${encodeURIComponent(a.referrer.externalId)}/portal`, undefined, { auth: b.secret });
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    },
    'PATCH /v1/participants/{externalId}': async () => {
      const reply = await api.patch(
        `/v1/participants/${encodeURIComponent(a.referrer.externalId)}`,
        { payout: { method: 'paypal', email: 'thief@b.example' } },
        { auth: b.secret },
      );
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    },
    'POST /v1/payouts': async () => {
      // B's run pays nothing of A's: B has no rewards at all.
      const reply = await api.post('/v1/payouts', {}, { auth: b.secret });
      expect(reply.status, reply.text).toBe(422);
      expect(reply.body.error.code).toBe('nothing_to_pay');
    },
    'GET /v1/payouts': async () => {
      expect(expectOk(await asB('/v1/payouts')).data).toEqual([]);
    },
    'GET /v1/payouts/{id}': async () => expectPayoutHidden('GET', ''),
    'GET /v1/payouts/{id}/export.csv': async () => expectPayoutHidden('GET', '/export.csv?format=generic'),
    'POST /v1/payouts/{id}/paid': async () => expectPayoutHidden('POST', '/paid'),
    'POST /v1/payouts/{id}/failed': async () => expectPayoutHidden('POST', '/failed'),
    'POST /v1/payouts/{id}/transfer': async () => expectPayoutHidden('POST', '/transfer'),
    'GET /v1/program/refused-origins': async () => {
      expect(expectOk(await asB('/v1/program/refused-origins')).data).toEqual([]);
    },
    'POST /v1/program/rules/preview': async () => {
      // B's saved rules are previewed, never A's.
      const reply = expectOk(
        await api.post('/v1/program/rules/preview', { sample: { purchaseAmount: 10_000, currency: 'USD' } }, { auth: b.secret }),
      );
      const text = JSON.stringify(reply);
      expect(text).not.toContain('purchase-cash');
      expect(text).not.toContain('signup-credit');
    },
    'GET /v1/rewards/totals': async () => {
      const totals = expectOk(await asB('/v1/rewards/totals'));
      expect(totals.data).toEqual([]);
      expect(totals.total.participants).toBe(0);
      expect(expectOk(await asB(`/v1/rewards/totals?participant=${encodeURIComponent(a.referrer.externalId)}`)).data).toEqual([]);
    },
    'GET /v1/emails': async () => {
      const emails = expectOk(await asB('/v1/emails'));
      expect(emails.from).toBeNull();
      expect(JSON.stringify(emails)).not.toContain('a-shop.example');
    },
    'GET /v1/emails/preview/{template}': async () => {
      const preview = expectOk(await asB('/v1/emails/preview/referral'));
      expect(preview.text).toContain(b.program.name);
      expect(JSON.stringify(preview)).not.toContain(a.fixture.program.name);
    },
    'POST /v1/participants/{externalId}/promo-codes': async () => {
      // B cannot hang a promo code on A's referrer (it would win A's paid events' attribution).
      const reply = await api.post(
        `/v1/participants/${encodeURIComponent(a.referrer.externalId)}/promo-codes`,
        { provider: 'paddle', id: 'dsc_stolen', code: 'STOLEN10' },
        { auth: b.secret },
      );
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    },
    'GET /v1/participants/{externalId}/promo-codes': async () => {
      const reply = await asB(`/v1/participants/${encodeURIComponent(a.referrer.externalId)}/promo-codes`);
      expect(reply.status, reply.text).toBe(404);
      expect(reply.text).not.toContain('ANNA10');
    },
    'DELETE /v1/participants/{externalId}/promo-codes/{id}': async () => {
      // By A's referrer's externalId, and by B's own participant: A's promo code stays.
      for (const externalId of [a.referrer.externalId, bParticipant.externalId]) {
        const path = `/v1/participants/${encodeURIComponent(externalId)}/promo-codes/${a.promoCodeId}`;
        const reply = await api.request('DELETE', path, undefined, { auth: b.secret });
        expect(reply.status, reply.text).toBe(404);
      }
    },
    'DELETE /v1/keys/{id}': async () => {
      for (const id of a.keyIds) {
        const reply = await api.request('DELETE', `/v1/keys/${id}`, undefined, { auth: b.secret });
        expect(reply.status, reply.text).toBe(404);
        expect(reply.body.error.code).toBe('not_found');
      }
      // A's keys are all still live and still work.
      expect((await asA('/v1/program')).status).toBe(200);
      const keys = expectOk(await asA('/v1/keys')).data as Array<{ revokedAt: string | null }>;
      expect(keys.map((key) => key.revokedAt)).toEqual(keys.map(() => null));
    },
  };

  async function expectRewardsUntouched(action: 'approve' | 'revoke' | 'pay') {
    for (const id of a.rewardIds) {
      const reply = await api.post(`/v1/rewards/${id}/${action}`, {}, { auth: b.secret });
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    }
    expect(expectOk(await asA('/v1/rewards'))).toEqual(aBefore['/v1/rewards']);
  }

  async function expectPayoutHidden(method: string, suffix: string) {
    const reply = await api.request(method, `/v1/payouts/${a.payoutId}${suffix}`, method === 'POST' ? {} : undefined, { auth: b.secret });
    expect(reply.status, reply.text).toBe(404);
    expect(reply.body.error.code).toBe('not_found');
  }

  async function expectHeaderOnly(path: string) {
    const reply = await asB(path);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = reply.text.split(/\r?\n/).filter((line) => line !== '');
    expect(lines, reply.text).toHaveLength(1);
    // The same header A gets.
    expect(lines[0]).toBe(String(aBefore[path]).split(/\r?\n/)[0]);
  }

  it('has a check for every secret-key operation in the OpenAPI document', () => {
    expect(Object.keys(checks).sort()).toEqual([...SECRET_OPERATIONS].sort());
  });

  // Reads first, then the writes (which give B data of its own).
  const ORDER = [...SECRET_OPERATIONS].sort((x, y) => Number(x.startsWith('GET')) - Number(y.startsWith('GET'))).reverse();
  it.each(ORDER)("%s with program B's secret key sees and changes nothing of program A", async (operation) => {
    const check = checks[operation];
    expect(check, `no check for ${operation}`).toBeDefined();
    await check?.();
  });

  it('and after all of that, A sees exactly what it saw before', async () => {
    const after = await snapshotA();
    expect(after).toEqual(aBefore);
  });

  it('an Idempotency-Key is scoped to the program: B reusing A’s key and body gets its own answer, not A’s', async () => {
    const key = uniq('idem-');
    const body = { externalId: uniq('idem-user-') };
    const first = await api.post('/v1/participants', body, { auth: a.fixture.secret, headers: { 'idempotency-key': key } });
    expect(first.status).toBe(201);
    const second = await api.post('/v1/participants', body, { auth: b.secret, headers: { 'idempotency-key': key } });
    expect(second.status, second.text).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(second.body.id).not.toBe(first.body.id);
    const rows = (await db('participants').where({ external_id: body.externalId }).select('program_id')) as Array<{ program_id: string }>;
    expect(rows.map((row) => row.program_id).sort()).toEqual([a.fixture.id, b.id].sort());
  });

  describe('keys of the wrong kind on the server API', () => {
    const sample = (operation: string) => {
      const [method = 'GET', template = '/'] = operation.split(' ');
      const path = template
        .replace('{externalId}', encodeURIComponent(a.referrer.externalId))
        .replace('{id}', a.rewardIds[0] ?? '00000000-0000-0000-0000-000000000000');
      return { method, path };
    };

    it.each(SECRET_OPERATIONS)(
      "%s refuses program A's publishable key, the operator token and a made-up key with 401",
      async (operation) => {
        const { method, path } = sample(operation);
        for (const token of [a.fixture.publishable, ADMIN_TOKEN, `sk_${'A'.repeat(32)}`, a.fixture.secret.slice(0, -2)]) {
          const reply = await api.request(method, path, method === 'GET' || method === 'DELETE' ? undefined : {}, { auth: token });
          expect(reply.status, `${operation} with ${token.slice(0, 3)}…: ${reply.text}`).toBe(401);
          expect(reply.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
          expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer/);
        }
        // Without any key as well.
        expect((await api.request(method, path)).status).toBe(401);
      },
    );

    it('a secret key is not the operator token: POST /v1/programs refuses it', async () => {
      const reply = await api.post(
        '/v1/programs',
        { name: 'Sneaky', origins: [ORIGIN_A], landingUrl: `${ORIGIN_A}/` },
        { auth: a.fixture.secret },
      );
      expect(reply.status).toBe(401);
      expect(reply.body.error.code).toBe('unauthorized');
    });
  });

  describe('browser endpoints across programs', () => {
    it("program A's publishable key with program B's code is { valid: false } and stores no click", async () => {
      const vid = newVid();
      const reply = await api.post(
        '/v1/clicks',
        { key: a.fixture.publishable, code: bParticipant.code, vid },
        { headers: { origin: ORIGIN_A } },
      );
      expect(reply.status, reply.text).toBe(202);
      expect(reply.body).toEqual({ valid: false });
      expect(await db('clicks').where({ vid }).first()).toBeUndefined();
      const stats = expectOk(await api.get(`/v1/participants/${encodeURIComponent(bParticipant.externalId)}`, { auth: b.secret }));
      expect(stats.stats.clicks).toBe(0);
      // The code's case does not matter: still B's, still not valid for A.
      expect(
        expectOk(await api.post('/v1/clicks', { key: a.fixture.publishable, code: bParticipant.code.toLowerCase(), vid: newVid() }), 202),
      ).toEqual({ valid: false });
    });

    it("program A's publishable key with program B's code on an event attributes nothing, in either program", async () => {
      const user = uniq('cross-');
      const reply = await api.post(
        '/v1/events',
        { key: a.fixture.publishable, type: 'signup', eventId: uniq(), vid: newVid(), code: bParticipant.code, user: { id: user } },
        { headers: { origin: ORIGIN_A } },
      );
      expect(reply.status, reply.text).toBe(202);
      const referralsA = expectOk(await asA('/v1/referrals')).data as Array<Record<string, unknown>>;
      expect(JSON.stringify(referralsA)).not.toContain(user);
      expect(expectOk(await asB('/v1/referrals')).data).toEqual([]);
      const bStats = expectOk(await api.get(`/v1/participants/${encodeURIComponent(bParticipant.externalId)}`, { auth: b.secret }));
      expect(bStats.stats.signups).toBe(0);
    });

    it("program B's origin is refused on program A's key (403), without a CORS header", async () => {
      const reply = await api.post(
        '/v1/clicks',
        { key: a.fixture.publishable, code: a.referrer.code, vid: newVid() },
        { headers: { origin: ORIGIN_B } },
      );
      expect(reply.status).toBe(403);
      expect(reply.body.error.code).toBe('origin_not_allowed');
      expect(reply.headers.get('access-control-allow-origin')).toBeNull();
    });

    it("a redirect link names its own program: B's code lands on B's landing page", async () => {
      const reply = await api.get(`/r/${bParticipant.code}`, { headers: { referer: `${ORIGIN_A}/blog` } });
      expect(reply.status).toBe(302);
      expect(new URL(reply.headers.get('location') ?? '').origin).toBe(ORIGIN_B);
    });

    it("a Stripe event for program A signed with program B's webhook secret is refused", async () => {
      const payload = JSON.stringify({
        id: `evt_${uniq()}`,
        type: 'invoice.paid',
        data: { object: { id: `in_${uniq()}`, amount_paid: 1000, currency: 'usd', metadata: { externalId: uniq() } } },
      });
      const reply = await api.post(`/v1/integrations/stripe/${a.fixture.slug}`, undefined, {
        raw: payload,
        headers: {
          'content-type': 'application/json',
          'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_program_b_secret' }),
        },
      });
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe('invalid_signature');
    });
  });

  describe('CORS only on the browser endpoints', () => {
    it.each(SECRET_OPERATIONS)("%s answers no Access-Control-Allow-Origin, even for program A's own origin", async (operation) => {
      const [method = 'GET', template = '/'] = operation.split(' ');
      const path = template
        .replace('{externalId}', encodeURIComponent(a.referrer.externalId))
        .replace('{id}', '00000000-0000-0000-0000-000000000000');
      for (const auth of [a.fixture.secret, undefined]) {
        const reply = await api.request(method, path, method === 'GET' || method === 'DELETE' ? undefined : {}, {
          ...(auth ? { auth } : {}),
          headers: { origin: ORIGIN_A },
        });
        expect(reply.headers.get('access-control-allow-origin'), `${operation} → ${reply.status}`).toBeNull();
        expect(reply.headers.get('access-control-allow-credentials')).toBeNull();
      }
      const preflight = await api.request('OPTIONS', path, undefined, {
        headers: {
          origin: ORIGIN_A,
          'access-control-request-method': method,
          'access-control-request-headers': 'authorization, content-type',
        },
      });
      expect(preflight.headers.get('access-control-allow-origin'), `preflight ${operation}`).toBeNull();
      expect(preflight.headers.get('access-control-allow-headers')).toBeNull();
    });

    it('the browser endpoints answer CORS for the program’s own origin only', async () => {
      const allowed = await api.post(
        '/v1/clicks',
        { key: a.fixture.publishable, code: a.referrer.code, vid: newVid() },
        { headers: { origin: ORIGIN_A } },
      );
      expect(allowed.status).toBe(202);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(ORIGIN_A);
      const preflight = await api.request('OPTIONS', '/v1/events', undefined, {
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    });
  });
});
