/**
 * The referrer portal over HTTP, on every database: portal links issued with the
 * secret key; `/v1/portal/me` read and changed with the link's token only for its own
 * participant of its own program; expired, forged and changed tokens refused with
 * 401; emails masked; payout details validated per method; the figures equal to
 * `GET /v1/participants/:externalId`; the page's headers; the token never logged.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../collector/src/app.ts';
import { loadConfig } from '../../collector/src/config.ts';
import { maskEmail } from '../../collector/src/domain/portal.ts';
import { createPortalTokens } from '../../collector/src/domain/portalTokens.ts';
import { createLogger } from '../../collector/src/logger.ts';
import { buildOpenApi } from '../../collector/src/openapi.ts';
import type { PortalResponse, PortalTokenResponse } from '../../shared/responses.ts';
import { ADMIN_TOKEN, httpClient, type Reply, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, newVid, type ProgramFixture } from '../helpers/factories.ts';
import { click, expectError, expectOk, expectValidation, participant, serverPurchase, serverSignup } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const SHOP = 'https://shop.example';
const RULES = [
  { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
  { id: 'purchase-cash', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
  { id: 'signup-coupon', on: 'signup', to: 'referrer', reward: { kind: 'coupon', coupon: 'THANKS-10' }, holdDays: 30 },
];

describe('maskEmail', () => {
  it.each([
    ['jane.doe@gmail.com', 'j***@gmail.com'],
    ['J@example.org', 'J***@example.org'],
    ['odd"@local@example.com', 'o***@example.com'],
    ['no-at-sign', '***'],
    ['@example.com', '***'],
    [null, null],
  ])('%s → %s', (email, masked) => {
    expect(maskEmail(email)).toBe(masked);
  });
});

describe.each(DATABASES)('referrer portal (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let shop: ProgramFixture;
  let other: ProgramFixture;

  useTestApp(kind, (suite) => ({ db, api } = suite));
  beforeAll(async () => {
    shop = await buildProgram(api, { name: 'Acme Shop', origins: [SHOP], settings: { rewardRules: RULES } });
    other = await buildProgram(api, { name: 'Other Program', origins: ['https://other.example'] });
  });

  const issue = (program: ProgramFixture, externalId: string, body?: unknown) =>
    api.post<PortalTokenResponse>(`/v1/participants/${encodeURIComponent(externalId)}/portal`, body, { auth: program.secret });
  const tokenFor = async (program: ProgramFixture, externalId: string) => expectOk(await issue(program, externalId), 201).token;
  const me = (token: string, headers: Record<string, string> = {}) =>
    api.get<PortalResponse>('/v1/portal/me', { headers: { authorization: `Portal ${token}`, ...headers } });
  const patchMe = (token: string, body: unknown, headers: Record<string, string> = {}) =>
    api.patch<PortalResponse>('/v1/portal/me', body, { headers: { authorization: `Portal ${token}`, ...headers } });
  /** The participant's id and program id, as a forger with the server secret would put them in a token. */
  const idsOf = async (program: ProgramFixture, externalId: string) =>
    (await db('participants').where({ program_id: program.id, external_id: externalId }).first('id')) as { id: string };

  describe('portal links', () => {
    it('issues a signed link for a participant: 201 { url, token, expiresAt }, an hour unless told', async () => {
      const alice = await buildParticipant(api, shop, { externalId: 'alice-link' });
      const before = Date.now();
      const link = expectOk(await issue(shop, alice.externalId), 201);
      const after = Date.now();
      expect(Object.keys(link).sort()).toEqual(['expiresAt', 'token', 'url']);
      expect(link.token).toMatch(/^[\w-]{50}\.[\w-]{43}$/);
      expect(link.url).toBe(`${api.url}/portal/${link.token}`);
      const expires = Date.parse(link.expiresAt);
      expect(expires).toBeGreaterThan(before + 3599_000 - 1000);
      expect(expires).toBeLessThanOrEqual(after + 3600_000);

      const week = expectOk(await issue(shop, alice.externalId, { ttlSeconds: 604_800 }), 201);
      expect(Date.parse(week.expiresAt)).toBeGreaterThan(before + 604_799_000 - 1000);
      expect(expectOk(await me(week.token)).code).toBe(alice.code);
    });

    it.each([[0], [59], [604_801], [1.5], ['3600'], [null]])('refuses ttlSeconds %j with a field message', async (ttlSeconds) => {
      await buildParticipant(api, shop, { externalId: 'alice-ttl' });
      const fields = expectValidation(await issue(shop, 'alice-ttl', { ttlSeconds }));
      expect(Object.keys(fields)).toEqual(['ttlSeconds']);
    });

    it('refuses unknown fields, unknown participants and other programs’ participants', async () => {
      await buildParticipant(api, shop, { externalId: 'alice-fields' });
      expect(Object.keys(expectValidation(await issue(shop, 'alice-fields', { participant: 'x' })))).toEqual(['_']);
      expectError(await issue(shop, 'nobody-here'), 404, 'not_found');
      // Another program's key cannot issue links for this program's people.
      expectError(await issue(other, 'alice-fields'), 404, 'not_found');
      // Only a secret key issues links.
      expectError(await api.post('/v1/participants/alice-fields/portal', undefined, { auth: shop.publishable }), 401, 'unauthorized');
      expectError(await api.post('/v1/participants/alice-fields/portal'), 401, 'unauthorized');
    });

    it('answers no CORS header (server API), and is never cached', async () => {
      await buildParticipant(api, shop, { externalId: 'alice-cors' });
      const reply = await issue(shop, 'alice-cors');
      expect(reply.status).toBe(201);
      expect(reply.headers.get('cache-control')).toBe('no-store');
      const withOrigin = await api.post('/v1/participants/alice-cors/portal', undefined, { auth: shop.secret, headers: { origin: SHOP } });
      expect(withOrigin.status).toBe(201);
      expect(withOrigin.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('tokens', () => {
    let token: string;
    let ids: { id: string };
    beforeAll(async () => {
      await buildParticipant(api, shop, { externalId: 'tina' });
      token = await tokenFor(shop, 'tina');
      ids = await idsOf(shop, 'tina');
    });

    it('reads the participant with a valid token', async () => {
      const body = expectOk(await me(token));
      expect(body.program).toEqual({ name: 'Acme Shop' });
      expect(body.referrer).toEqual({ name: null, email: null });
    });

    it('refuses a missing or malformed Authorization header with 401', async () => {
      const variants: Array<Record<string, string>> = [
        {},
        { authorization: token },
        { authorization: `Bearer ${token}` },
        { authorization: `Bearer ${shop.secret}` },
      ];
      for (const headers of variants) {
        const error = expectError(await api.get('/v1/portal/me', { headers }), 401, 'token_invalid');
        expect(error.message).toMatch(/ask for a new one/);
      }
      expect((await me('x')).headers.get('www-authenticate')).toBe('Portal');
    });

    it('refuses a changed token: any character of the payload or the signature, cut, extended or garbage', async () => {
      const [payload, signature] = token.split('.') as [string, string];
      const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
      const changed = [
        `${flip(payload, 3)}.${signature}`,
        `${flip(payload, payload.length - 1)}.${signature}`,
        `${payload}.${flip(signature, 0)}`,
        // The last character of a 32-byte signature holds 2 spare bits: a variant that
        // decodes to the same bytes must still be refused (canonical encoding only).
        `${payload}.${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`,
        `${payload}.${signature.slice(0, -1)}`,
        `${payload}.${signature}A`,
        `${payload}.${signature}.x`,
        payload,
        `${payload}.`,
        'not-a-token',
        `${payload}.${signature}`.toLowerCase(),
      ];
      for (const forged of changed) {
        const reply = await me(forged);
        expectError(reply, 401, 'token_invalid');
      }
      expectOk(await me(token));
    });

    it('refuses an expired token (signed with the server secret through the domain) with 401 token_expired', async () => {
      const tokens = createPortalTokens(db);
      const expired = await tokens.sign({ participantId: ids.id, programId: shop.id, expiresAt: new Date(Date.now() - 1000) });
      const error = expectError(await me(expired), 401, 'token_expired');
      expect(error.message).toMatch(/expired; ask for a new one/);
      expectError(await patchMe(expired, { emails: { referral: false } }), 401, 'token_expired');
      // The same claims, still valid: the forge is the real thing.
      const valid = await tokens.sign({ participantId: ids.id, programId: shop.id, expiresAt: new Date(Date.now() + 60_000) });
      expect(expectOk(await me(valid)).program.name).toBe('Acme Shop');
    });

    it('refuses a token whose participant and program do not go together', async () => {
      const tokens = createPortalTokens(db);
      const expiresAt = new Date(Date.now() + 60_000);
      const crossed = await tokens.sign({ participantId: ids.id, programId: other.id, expiresAt });
      expectError(await me(crossed), 401, 'token_invalid');
      const nobody = await tokens.sign({ participantId: '00000000-0000-4000-8000-000000000000', programId: shop.id, expiresAt });
      expectError(await me(nobody), 401, 'token_invalid');
    });

    it("ends an erased participant's tokens, and issues none for them", async () => {
      await buildParticipant(api, shop, { externalId: 'erin-erased', email: 'erin@example.com' });
      const before = await tokenFor(shop, 'erin-erased');
      expectOk(await me(before));
      expect((await api.request('DELETE', '/v1/participants/erin-erased', undefined, { auth: shop.secret })).status).toBe(204);
      expectError(await me(before), 401, 'token_invalid');
      expectError(await patchMe(before, { emails: { referral: false } }), 401, 'token_invalid');
      expect((await api.get(`/portal/${before}`)).status).toBe(401);
      expectError(await issue(shop, 'erin-erased'), 404, 'not_found');
    });
  });

  describe('one participant of one program', () => {
    it("A's token reads and changes only A; B and the other program's namesake are untouched", async () => {
      const a = await buildParticipant(api, shop, { externalId: 'amy', email: 'amy@example.com', name: 'Amy Adams' });
      const b = await buildParticipant(api, shop, { externalId: 'ben', email: 'ben@example.com' });
      const namesake = await buildParticipant(api, other, { externalId: 'amy' });
      const tokenA = await tokenFor(shop, 'amy');
      const tokenB = await tokenFor(shop, 'ben');
      const tokenNamesake = await tokenFor(other, 'amy');
      await click(api, shop, { code: b.code, vid: newVid() });

      const seenByA = expectOk(await me(tokenA));
      expect(seenByA).toMatchObject({ code: a.code, link: a.link, referrer: { name: 'Amy Adams', email: 'amy@example.com' } });
      expect(seenByA.stats.clicks).toBe(0);
      expect(JSON.stringify(seenByA)).not.toContain(b.code);

      const changed = expectOk(
        await patchMe(tokenA, { payout: { method: 'paypal', email: 'Amy.Pay@Example.com' }, emails: { referral: false } }),
      );
      expect(changed.payout).toEqual({ method: 'paypal', email: 'amy.pay@example.com' });
      expect(changed.emails).toEqual({ referral: false, rewardApproved: true, payoutPaid: true });
      // The body names no one: nothing in it can point the change elsewhere.
      expectValidation(await patchMe(tokenA, { externalId: 'ben', payout: { method: 'manual' } }));

      for (const [token, code] of [
        [tokenB, b.code],
        [tokenNamesake, namesake.code],
      ] as const) {
        const untouched = expectOk(await me(token));
        expect(untouched.code).toBe(code);
        expect(untouched.payout).toBeNull();
        expect(untouched.emails).toEqual({ referral: true, rewardApproved: true, payoutPaid: true });
      }
      expect(expectOk(await me(tokenB)).stats.clicks).toBe(1);
      expect(expectOk(await me(tokenNamesake)).program.name).toBe('Other Program');
    });
  });

  describe('figures, rewards and referrals', () => {
    let referrer: { externalId: string; code: string };
    let portal: PortalResponse;

    beforeAll(async () => {
      referrer = await buildParticipant(api, shop, { externalId: 'rita', email: 'rita@example.com', name: 'Rita' });
      for (let i = 0; i < 3; i++) await click(api, shop, { code: referrer.code, vid: newVid() });
      await conversionWithEmail('jane-buyer', 'jane.doe@gmail.com', referrer.code);
      await conversionWithEmail('mo-buyer', 'mo@example.org', referrer.code);
      await serverSignup(api, shop, 'no-email-buyer', referrer.code);
      await serverPurchase(api, shop, 'jane-buyer', 'order-jane-1', 4900, 'USD');
      await serverPurchase(api, shop, 'mo-buyer', 'order-mo-1', 2000, 'EUR');
      portal = expectOk(await me(await tokenFor(shop, referrer.externalId)));
    });

    async function conversionWithEmail(externalId: string, email: string, code: string) {
      const reply = await api.post(
        '/v1/conversions',
        { type: 'signup', eventId: `signup-${externalId}`, externalId, email, referral: { code } },
        { auth: shop.secret },
      );
      expectOk(reply);
    }

    it('has the same totals as GET /v1/participants/:externalId, and its 30 days add up to them', async () => {
      const details = await participant(api, shop, referrer.externalId);
      expect(portal.stats).toEqual(details.stats);
      expect(portal.stats).toMatchObject({ clicks: 3, signups: 3, purchases: 2, revenue: { USD: 4900, EUR: 2000 } });
      expect(portal.days).toHaveLength(30);
      const sum = (key: 'clicks' | 'signups' | 'purchases') => portal.days.reduce((total, day) => total + day[key], 0);
      expect({ clicks: sum('clicks'), signups: sum('signups'), purchases: sum('purchases') }).toEqual({
        clicks: 3,
        signups: 3,
        purchases: 2,
      });
      const dates = portal.days.map((day) => day.date);
      expect(dates).toEqual([...dates].sort());
      expect(new Set(dates).size).toBe(30);
    });

    it('gives rewards by status per currency, cash and credit apart, coupons hidden until approved', async () => {
      expect(portal.rewards.credit).toEqual({ pending: {}, approved: { USD: 1500 }, paid: {} });
      expect(portal.rewards.cash).toEqual({ pending: {}, approved: { USD: 490, EUR: 200 }, paid: {} });
      expect(portal.rewards.coupons).toHaveLength(3);
      for (const coupon of portal.rewards.coupons)
        expect(coupon).toEqual({ coupon: null, status: 'pending', createdAt: expect.any(String) });
      // The same money as the participant's balances, which add every kind together.
      const details = await participant(api, shop, referrer.externalId);
      expect(details.rewards.approved).toEqual({ USD: 1990, EUR: 200 });

      const [reward] = (await db('rewards')
        .join('participants as p', 'p.id', 'rewards.beneficiary_id')
        .where({ 'p.external_id': referrer.externalId, 'rewards.kind': 'coupon' })
        .select('rewards.id')) as Array<{ id: string }>;
      expectOk(await api.post(`/v1/rewards/${reward!.id}/approve`, { force: true, reason: 'portal test' }, { auth: shop.secret }));
      const after = expectOk(await me(await tokenFor(shop, referrer.externalId)));
      expect(after.rewards.coupons.filter((coupon) => coupon.coupon === 'THANKS-10')).toHaveLength(1);
    });

    it('lists the people referred, newest first, with emails masked', async () => {
      expect(portal.referrals.total).toBe(3);
      expect(portal.referrals.data.map((person) => person.email).sort()).toEqual(['j***@gmail.com', 'm***@example.org', null].sort());
      const text = JSON.stringify(portal);
      for (const secret of ['jane.doe', 'jane-buyer', 'mo@example.org', 'mo-buyer', 'no-email-buyer']) expect(text).not.toContain(secret);
      const times = portal.referrals.data.map((person) => person.createdAt);
      expect(times).toEqual([...times].sort().reverse());
    });

    it('gives the link, its QR code and share links', async () => {
      expect(portal.link).toBe(`${api.url}/r/${referrer.code}`);
      expect(portal.qrSvg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*viewBox="0 0 \d+ \d+"/);
      const link = encodeURIComponent(portal.link!);
      expect(portal.share).toEqual({
        email: expect.stringMatching(new RegExp(`^mailto:\\?subject=.+&body=.*${literal(link)}$`)),
        x: expect.stringMatching(new RegExp(`^https://x\\.com/intent/tweet\\?text=.+&url=${literal(link)}$`)),
        linkedin: `https://www.linkedin.com/sharing/share-offsite/?url=${link}`,
        whatsapp: expect.stringMatching(new RegExp(`^https://wa\\.me/\\?text=.*${literal(link)}$`)),
      });
    });
  });

  describe('payouts', () => {
    it("lists the referrer's payouts: pending when the run is made, paid when the program marks them", async () => {
      // A program of its own: a run pays every referrer of the program.
      const paying = await buildProgram(api, { origins: [SHOP], settings: { rewardRules: RULES } });
      const pat = await buildParticipant(api, paying, { externalId: 'pat-paid' });
      await serverSignup(api, paying, 'pat-buyer', pat.code);
      await serverPurchase(api, paying, 'pat-buyer', 'order-pat-1', 10_000, 'USD');
      const token = expectOk(await issue(paying, 'pat-paid'), 201).token;
      expect(expectOk(await me(token)).payouts).toEqual([]);
      expectOk(await patchMe(token, { payout: { method: 'paypal', email: 'pat@example.com' } }));

      const run = expectOk(await api.post('/v1/payouts', {}, { auth: paying.secret }), 201);
      const pending = expectOk(await me(token));
      expect(pending.payouts).toEqual([
        {
          currency: 'USD',
          amount: 1000,
          method: 'paypal',
          status: 'pending',
          createdAt: expect.any(String),
          updatedAt: expect.any(String),
        },
      ]);
      expect(pending.rewards.cash.approved).toEqual({ USD: 1000 });

      expectOk(await api.post(`/v1/payouts/${run.id}/paid`, {}, { auth: paying.secret }));
      const paid = expectOk(await me(token));
      expect(paid.payouts.map((payout) => payout.status)).toEqual(['paid']);
      expect(paid.rewards.cash).toEqual({ pending: {}, approved: {}, paid: { USD: 1000 } });
      // Nobody else's payouts: the namesake in another program has none.
      await buildParticipant(api, shop, { externalId: 'pat-paid' });
      expect(expectOk(await me(await tokenFor(shop, 'pat-paid'))).payouts).toEqual([]);
    });
  });

  describe('payout details and email choices', () => {
    let token: string;
    beforeAll(async () => {
      await buildParticipant(api, shop, { externalId: 'paula' });
      token = await tokenFor(shop, 'paula');
    });

    it.each([
      [{ method: 'paypal' }, 'payout.email'],
      [{ method: 'wise' }, 'payout.email'],
      [{ method: 'paypal', email: 'not-an-email' }, 'payout.email'],
      [{ method: 'stripe_connect' }, 'payout.stripeAccount'],
      [{ method: 'stripe_connect', stripeAccount: 'acct-123' }, 'payout.stripeAccount'],
      [{ method: 'stripe_connect', stripeAccount: 'cus_123' }, 'payout.stripeAccount'],
      [{ method: 'bitcoin', email: 'p@example.com' }, 'payout.method'],
      [{ method: 'manual', iban: 'DE00' }, 'payout'],
    ])('refuses %j (%s)', async (payout, field) => {
      const fields = expectValidation(await patchMe(token, { payout }));
      expect(Object.keys(fields)).toEqual([field]);
      expect(expectOk(await me(token)).payout).toBeNull();
    });

    it.each([
      [{ method: 'paypal', email: 'paula@example.com' }],
      [{ method: 'wise', email: 'paula@example.com' }],
      [{ method: 'stripe_connect', stripeAccount: 'acct_1Abc234' }],
      [{ method: 'manual' }],
    ])('stores %j, and null clears it', async (payout) => {
      expect(expectOk(await patchMe(token, { payout })).payout).toEqual(payout);
      expect(expectOk(await me(token)).payout).toEqual(payout);
      expect(expectOk(await patchMe(token, { payout: null })).payout).toBeNull();
    });

    it('keeps email choices apart from payout details, merging each change', async () => {
      expect(expectOk(await patchMe(token, { emails: { rewardApproved: false } })).emails).toEqual({
        referral: true,
        rewardApproved: false,
        payoutPaid: true,
      });
      expect(expectOk(await patchMe(token, { emails: { payoutPaid: false } })).emails).toEqual({
        referral: true,
        rewardApproved: false,
        payoutPaid: false,
      });
      expect(expectOk(await patchMe(token, { payout: { method: 'manual' } })).emails.payoutPaid).toBe(false);
      expect(Object.keys(expectValidation(await patchMe(token, { emails: { referral: 'no' } })))).toEqual(['emails.referral']);
      expect(Object.keys(expectValidation(await patchMe(token, { emails: { marketing: true } })))).toEqual(['emails']);
      expectValidation(await patchMe(token, {}));
      expectValidation(await patchMe(token, undefined));
    });
  });

  describe('CORS for hosts who build their own page', () => {
    let token: string;
    beforeAll(async () => {
      await buildParticipant(api, shop, { externalId: 'carl' });
      token = await tokenFor(shop, 'carl');
    });

    it("answers the program's origins, preflight included", async () => {
      const preflight = await api.request('OPTIONS', '/v1/portal/me', undefined, {
        headers: { origin: SHOP, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization,content-type' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(SHOP);
      expect(preflight.headers.get('access-control-allow-methods')).toContain('PATCH');
      expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/);

      const read = await me(token, { origin: SHOP });
      expect(read.status).toBe(200);
      expect(read.headers.get('access-control-allow-origin')).toBe(SHOP);
      expect(read.headers.get('cache-control')).toBe('no-store');
      const refused = await me('not-a-token', { origin: SHOP });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('access-control-allow-origin')).toBe(SHOP);
    });

    it("refuses another program's origin and unknown origins; the collector's own origin is its page", async () => {
      expectError(await me(token, { origin: 'https://other.example' }), 403, 'origin_not_allowed');
      const foreign = await me(token, { origin: 'https://evil.example' });
      expectError(foreign, 403, 'origin_not_allowed');
      expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
      const unknownPreflight = await api.request('OPTIONS', '/v1/portal/me', undefined, { headers: { origin: 'https://evil.example' } });
      expect(unknownPreflight.headers.get('access-control-allow-origin')).toBeNull();
      expectOk(await patchMe(token, { emails: { referral: false } }, { origin: new URL(api.url).origin }));
    });
  });

  describe('the page', () => {
    let token: string;
    beforeAll(async () => {
      await buildParticipant(api, shop, { externalId: 'page-pat' });
      token = await tokenFor(shop, 'page-pat');
    });

    it("serves the app shell framed only by the program's origins, never cached, no referrer", async () => {
      const reply = await api.get(`/portal/${token}`);
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
      const csp = reply.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain(`frame-ancestors ${SHOP};`);
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
      expect(reply.headers.get('referrer-policy')).toBe('no-referrer');
      expect(reply.headers.get('cache-control')).toBe('no-store');
      expect(reply.headers.get('x-frame-options')).toBeNull();
      expect(reply.text).toContain('<script defer src="/portal/app.js"></script>');
      expect(reply.text).not.toMatch(/<script>|<script [^>]*>[^<]/);
      expect(reply.text).not.toContain(token);
    });

    it('answers a friendly 401 page for an expired link (still framed by the program) and for a changed one (framed by none)', async () => {
      const ids = await idsOf(shop, 'page-pat');
      const expired = await createPortalTokens(db).sign({
        participantId: ids.id,
        programId: shop.id,
        expiresAt: new Date(Date.now() - 1000),
      });
      const old = await api.get(`/portal/${expired}`);
      expect(old.status).toBe(401);
      expect(old.text).toContain('This link has expired');
      expect(old.text).toContain('Ask for a new one');
      expect(old.headers.get('content-security-policy')).toContain(`frame-ancestors ${SHOP};`);

      const changed = await api.get(`/portal/${token.slice(0, -2)}xy`);
      expect(changed.status).toBe(401);
      expect(changed.text).toContain('This link is not valid');
      expect(changed.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    });

    it('is framed by nobody when the program lists no origins', async () => {
      const closed = await buildProgram(api, { origins: [] });
      await buildParticipant(api, closed, { externalId: 'nora' });
      const reply = await api.get(`/portal/${await tokenFor(closed, 'nora')}`);
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    });

    it('serves its script and stylesheet with ETags, and /portal.js for hosts like /r.js', async () => {
      for (const path of ['/portal/app.js', '/portal/app.css']) {
        const reply = await api.get(path);
        expect(reply.status, path).toBe(200);
        const etag = reply.headers.get('etag') ?? '';
        expect(etag).toMatch(/^"/);
        // fetch marks a conditional request `Cache-Control: no-cache` unless it carries its own.
        expect((await api.get(path, { headers: { 'if-none-match': etag, 'cache-control': 'max-age=0' } })).status).toBe(304);
      }
      const embed = await api.get('/portal.js', { headers: { 'accept-encoding': 'identity' } });
      expect(embed.status).toBe(200);
      expect(embed.headers.get('content-type')).toMatch(/^application\/javascript/);
      expect(embed.headers.get('cache-control')).toBe('public, max-age=3600');
      expect(embed.headers.get('access-control-allow-origin')).toBe('*');
      expect(embed.text).toContain('referral-portal:height');
      const etag = embed.headers.get('etag') ?? '';
      const again = await api.get('/portal.js', {
        headers: { 'accept-encoding': 'identity', 'if-none-match': etag, 'cache-control': 'max-age=0' },
      });
      expect(again.status).toBe(304);
      const snippet = await api.get('/r.js', { headers: { 'accept-encoding': 'identity' } });
      expect(snippet.text).not.toContain('portal');
      expect((await api.get('/portal/nope/deeper')).status).toBe(404);
    });
  });

  it('lists the portal routes in the OpenAPI document', () => {
    const paths = buildOpenApi('http://collector.test').paths as Record<string, Record<string, { security?: unknown }>>;
    expect(paths['/v1/participants/{externalId}/portal']?.post?.security).toEqual([{ secretKey: [] }]);
    expect(paths['/v1/portal/me']?.get?.security).toEqual([{ portalToken: [] }]);
    expect(paths['/v1/portal/me']?.patch?.security).toEqual([{ portalToken: [] }]);
    expect(paths['/portal/{token}']?.get).toBeDefined();
    expect(paths['/portal.js']?.get).toBeDefined();
  });

  it('never writes a token to the logs', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = loadConfig({ ADMIN_TOKEN, LOG_LEVEL: 'info', IP_HASH_SECRET: 'test-ip-hash-secret-0123456789' });
    const server = createServer(buildApp({ db, config, logger: createLogger('info', sink) }).callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const logged = httpClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      await buildParticipant(api, shop, { externalId: 'lou' });
      const issued: Reply<PortalTokenResponse> = await logged.post('/v1/participants/lou/portal', undefined, { auth: shop.secret });
      const token = expectOk(issued, 201).token;
      const [payload, signature] = token.split('.') as [string, string];
      const auth = { authorization: `Portal ${token}` };
      expect((await logged.get(`/portal/${token}`)).status).toBe(200);
      expect((await logged.get(`/portal/${token}x`)).status).toBe(401);
      expect((await logged.get('/v1/portal/me', { headers: auth })).status).toBe(200);
      expect((await logged.patch('/v1/portal/me', { emails: { referral: false } }, { headers: auth })).status).toBe(200);
      expect((await logged.get('/v1/portal/me', { headers: { authorization: `Portal ${token}x` } })).status).toBe(401);
      expect((await logged.get('/portal/app.js')).status).toBe(200);

      const text = lines.join('');
      expect(lines.length).toBeGreaterThanOrEqual(7);
      expect(text).not.toContain(payload);
      expect(text).not.toContain(signature);
      const paths = lines.map((line) => (JSON.parse(line) as { path?: string }).path);
      expect(paths.filter((path) => path === '/portal/[redacted]')).toHaveLength(2);
      expect(paths).toContain('/v1/portal/me');
      expect(paths).toContain('/portal/app.js');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

/** A string as a literal inside a RegExp. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
