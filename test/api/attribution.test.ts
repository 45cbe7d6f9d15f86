/**
 * Attribution through the real app, on every database: one command for browser
 * events (unverified) and server conversions (verified); the referrer from a code or
 * from the visitor's clicks (first/last touch, window); one-time attribution; every
 * rejection reason; fraud holds; confirmation by the server; idempotency (event ids
 * and Idempotency-Key); listings, participant stats and tenant isolation.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { ErrorBody } from '../../shared/schemas.ts';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, newVid, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { DAY_MS, ofProgramSql } from '../helpers/rows.ts';
import {
  browserEvent,
  click,
  conversion,
  decisions,
  participant,
  referrals,
  sendConversion,
  type ConversionInput,
} from '../helpers/steps.ts';
import type { Page, ReferralResponse } from '../../shared/responses.ts';

describe.each(DATABASES)('attribution (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  // ---- helpers -------------------------------------------------------------------------

  const program = (settings?: Record<string, unknown>) => buildProgram(api, settings ? { settings } : {});

  async function configure(fixture: ProgramFixture, settings: Record<string, unknown>) {
    const reply = await api.patch('/v1/program', { settings }, { auth: fixture.secret });
    expect(reply.status, reply.text).toBe(200);
  }

  async function counts(fixture: ProgramFixture) {
    const tables = ['participants', 'codes', 'clicks', 'conversions', 'referrals', 'decisions', 'rewards'] as const;
    const result = await db.raw(
      `select ${tables.map((table) => `(select count(*) from ${ofProgramSql(table)} = ?) as ${table}`).join(', ')}`,
      tables.map(() => fixture.id),
    );
    const row = result.rows[0] as Record<string, unknown>;
    return Object.fromEntries(tables.map((table) => [table, Number(row[table])])) as Record<(typeof tables)[number], number>;
  }

  const backdateClicks = (visitor: string, code: string, ms: number) =>
    db('clicks')
      .where({ vid: visitor })
      .whereIn('code_id', db('codes').select('id').where({ code }))
      .update({ created_at: new Date(Date.now() - ms) });

  const conversionsOf = async (fixture: ProgramFixture, externalId: string) =>
    db('conversions')
      .join('participants', 'participants.id', 'conversions.participant_id')
      .where({ 'conversions.program_id': fixture.id, 'participants.external_id': externalId })
      .select('conversions.*');

  // ---- referrer from a code ------------------------------------------------------------

  describe('the referrer from a code', () => {
    it('attributes a new customer to the owner of the code, creating the customer', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const user = uniq('user-');
      const eventId = uniq('evt-');
      const answer = await conversion(api, fixture, {
        externalId: user,
        eventId,
        email: 'New.Customer@Example.com',
        code: referrer.code.toLowerCase(),
      });
      expect(answer.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });
      expect(answer.conversion).toMatchObject({ type: 'signup', eventId, externalId: user, verified: true, source: 'server' });
      expect(answer.rewards).toEqual([]);

      const created = await participant(api, fixture, user);
      expect(created.referredBy).toBe(referrer.externalId);
      expect(created.code).toMatch(/^[2-9A-HJKMNP-Z]{8}$/);

      const page = await referrals(api, fixture);
      expect(page.data).toEqual([
        expect.objectContaining({
          referrer: referrer.externalId,
          referred: user,
          referredEmail: 'new.customer@example.com',
          code: referrer.code,
          status: 'attributed',
          reason: null,
          verified: true,
        }),
      ]);
      const accepted = await decisions(api, fixture, 'reason=attributed');
      expect(accepted).toEqual([
        expect.objectContaining({
          subject: 'attribution',
          outcome: 'accepted',
          participant: user,
          referrer: referrer.externalId,
          code: referrer.code,
          eventId,
        }),
      ]);
    });

    it('attributes from a browser event too: unverified, answered 202 { accepted: true }', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const user = uniq('user-');
      await browserEvent(api, fixture, { userId: user, code: referrer.code });
      expect((await participant(api, fixture, user)).referredBy).toBe(referrer.externalId);
      expect((await referrals(api, fixture)).data).toEqual([
        expect.objectContaining({ referred: user, status: 'attributed', verified: false }),
      ]);
      const [row] = await conversionsOf(fixture, user);
      expect(row).toMatchObject({ type: 'signup', verified: false, source: 'browser' });
    });

    it('attributes at most once: later conversions answer existing with the first referrer', async () => {
      const fixture = await program();
      const first = await buildParticipant(api, fixture);
      const second = await buildParticipant(api, fixture);
      const user = uniq('user-');
      expect((await conversion(api, fixture, { externalId: user, code: first.code })).attribution.status).toBe('attributed');

      const purchase = await conversion(api, fixture, {
        type: 'purchase',
        externalId: user,
        code: second.code,
        amount: 1000,
        currency: 'usd',
      });
      expect(purchase.attribution).toEqual({ status: 'existing', referrer: first.externalId });
      expect(purchase.conversion).toMatchObject({ type: 'purchase', amount: 1000, currency: 'USD' });
      const plain = await conversion(api, fixture, { type: 'purchase', externalId: user, amount: 500, currency: 'USD' });
      expect(plain.attribution).toEqual({ status: 'existing', referrer: first.externalId });
      await browserEvent(api, fixture, {
        type: 'purchase',
        userId: user,
        code: second.code,
        order: { id: uniq('order-'), amount: 10, currency: 'USD' },
      });

      expect((await participant(api, fixture, user)).referredBy).toBe(first.externalId);
      expect((await referrals(api, fixture)).data.map((r) => r.referrer)).toEqual([first.externalId]);
      const already = await decisions(api, fixture, 'reason=already_attributed');
      expect(already).toHaveLength(2);
      for (const decision of already)
        expect(decision).toMatchObject({ outcome: 'rejected', participant: user, referrer: first.externalId });
    });

    it('answers none / no_referral_data without a code or clicks, and attributes nobody', async () => {
      const fixture = await program();
      const user = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: user });
      expect(answer.attribution).toEqual({ status: 'none', reason: 'no_referral_data' });
      const unknownVisitor = await conversion(api, fixture, { externalId: uniq('user-'), vid: newVid() });
      expect(unknownVisitor.attribution).toEqual({ status: 'none', reason: 'no_referral_data' });
      await browserEvent(api, fixture, { userId: uniq('user-') });
      expect((await participant(api, fixture, user)).referredBy).toBeNull();
      expect((await referrals(api, fixture)).data).toEqual([]);
      expect((await counts(fixture)).conversions).toBe(3);
    });
  });

  // ---- referrer from clicks ------------------------------------------------------------

  describe("the referrer from the visitor's clicks", () => {
    it('attributes a visitor id to the code it clicked', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const visitor = newVid();
      await click(api, fixture, { code: referrer.code, vid: visitor });
      const answer = await conversion(api, fixture, { externalId: uniq('user-'), vid: visitor });
      expect(answer.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });

      const other = newVid();
      await click(api, fixture, { code: referrer.code, vid: other });
      const user = uniq('user-');
      await browserEvent(api, fixture, { userId: user, vid: other });
      expect((await participant(api, fixture, user)).referredBy).toBe(referrer.externalId);
    });

    it('uses the first touch by default and the last touch when settings.attribution is last', async () => {
      const fixture = await program();
      const early = await buildParticipant(api, fixture);
      const late = await buildParticipant(api, fixture);
      const touched = async () => {
        const visitor = newVid();
        await click(api, fixture, { code: early.code, vid: visitor });
        await click(api, fixture, { code: late.code, vid: visitor });
        await backdateClicks(visitor, early.code, 3 * DAY_MS);
        await backdateClicks(visitor, late.code, 1 * DAY_MS);
        return visitor;
      };
      expect((await conversion(api, fixture, { externalId: uniq('user-'), vid: await touched() })).attribution.referrer).toBe(
        early.externalId,
      );

      await configure(fixture, { attribution: 'last' });
      expect((await conversion(api, fixture, { externalId: uniq('user-'), vid: await touched() })).attribution.referrer).toBe(
        late.externalId,
      );

      await configure(fixture, { attribution: 'first' });
      expect((await conversion(api, fixture, { externalId: uniq('user-'), vid: await touched() })).attribution.referrer).toBe(
        early.externalId,
      );
    });

    it('rejects clicks older than windowDays as outside_window, and counts the ones inside', async () => {
      const fixture = await program();
      await configure(fixture, { windowDays: 7 });
      const referrer = await buildParticipant(api, fixture);

      const stale = newVid();
      await click(api, fixture, { code: referrer.code, vid: stale });
      await backdateClicks(stale, referrer.code, 8 * DAY_MS);
      const user = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: user, vid: stale });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'outside_window' });
      expect((await participant(api, fixture, user)).referredBy).toBeNull();
      expect(await decisions(api, fixture, 'reason=outside_window')).toEqual([
        expect.objectContaining({ subject: 'attribution', outcome: 'rejected', participant: user }),
      ]);

      const fresh = newVid();
      await click(api, fixture, { code: referrer.code, vid: fresh });
      await backdateClicks(fresh, referrer.code, 6 * DAY_MS);
      expect((await conversion(api, fixture, { externalId: uniq('user-'), vid: fresh })).attribution).toEqual({
        status: 'attributed',
        referrer: referrer.externalId,
      });

      // A wider window brings the stale click back in.
      await configure(fixture, { windowDays: 30 });
      expect((await conversion(api, fixture, { externalId: uniq('user-'), vid: stale })).attribution).toEqual({
        status: 'attributed',
        referrer: referrer.externalId,
      });
      expect((await referrals(api, fixture)).data).toHaveLength(2);
    });

    it('ignores clicks outside the window when choosing the first touch', async () => {
      const fixture = await program();
      await configure(fixture, { windowDays: 7 });
      const old = await buildParticipant(api, fixture);
      const recent = await buildParticipant(api, fixture);
      const visitor = newVid();
      await click(api, fixture, { code: old.code, vid: visitor });
      await click(api, fixture, { code: recent.code, vid: visitor });
      await backdateClicks(visitor, old.code, 10 * DAY_MS);
      await backdateClicks(visitor, recent.code, 2 * DAY_MS);
      expect((await conversion(api, fixture, { externalId: uniq('user-'), vid: visitor })).attribution.referrer).toBe(recent.externalId);
    });

    it('rejects a code whose click by this visitor is older than the window as outside_window', async () => {
      const fixture = await program();
      await configure(fixture, { windowDays: 7 });
      const referrer = await buildParticipant(api, fixture);
      const visitor = newVid();
      await click(api, fixture, { code: referrer.code, vid: visitor });
      await backdateClicks(visitor, referrer.code, 9 * DAY_MS);
      const answer = await conversion(api, fixture, { externalId: uniq('user-'), code: referrer.code, vid: visitor });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'outside_window' });
      // The same code without that stale visitor attributes.
      expect((await conversion(api, fixture, { externalId: uniq('user-'), code: referrer.code, vid: newVid() })).attribution.status).toBe(
        'attributed',
      );
    });
  });

  // ---- rejections -----------------------------------------------------------------------

  describe('rejections, each with its recorded reason', () => {
    it('self_referral: the referrer converting with their own code', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const answer = await conversion(api, fixture, { externalId: referrer.externalId, code: referrer.code });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
      expect((await participant(api, fixture, referrer.externalId)).referredBy).toBeNull();
      expect((await referrals(api, fixture)).data).toEqual([]);
      expect(await decisions(api, fixture, 'reason=self_referral')).toEqual([
        expect.objectContaining({
          subject: 'attribution',
          outcome: 'rejected',
          participant: referrer.externalId,
          referrer: referrer.externalId,
          code: referrer.code,
        }),
      ]);
    });

    it('self_referral: the same normalized email', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture, { email: 'Pat.Doe@Example.com' });
      const user = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: user, email: '  PAT.DOE@example.COM ', code: referrer.code });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
      expect((await participant(api, fixture, user)).referredBy).toBeNull();

      const browserUser = uniq('user-');
      await browserEvent(api, fixture, { userId: browserUser, email: 'pat.doe@EXAMPLE.com', code: referrer.code });
      expect((await participant(api, fixture, browserUser)).referredBy).toBeNull();
      expect(await decisions(api, fixture, 'reason=self_referral')).toHaveLength(2);

      // Another address is fine.
      expect(
        (await conversion(api, fixture, { externalId: uniq('user-'), email: 'pat.doe2@example.com', code: referrer.code })).attribution
          .status,
      ).toBe('attributed');
    });

    it('self_referral: a visitor id the referrer converted with themselves', async () => {
      const fixture = await program();
      const owner = uniq('owner-');
      const sharedVisitor = newVid();
      await browserEvent(api, fixture, { userId: owner, vid: sharedVisitor });
      const code = (await participant(api, fixture, owner)).code!;

      const second = uniq('user-');
      await browserEvent(api, fixture, { userId: second, vid: sharedVisitor, code });
      expect((await participant(api, fixture, second)).referredBy).toBeNull();

      const third = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: third, code, vid: sharedVisitor });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
      const found = await decisions(api, fixture, 'reason=self_referral');
      expect(found.map((d) => d.participant).sort()).toEqual([second, third].sort());
      for (const decision of found) expect(decision.referrer).toBe(owner);

      // Someone on another device is fine.
      expect((await conversion(api, fixture, { externalId: uniq('user-'), code, vid: newVid() })).attribution).toEqual({
        status: 'attributed',
        referrer: owner,
      });
    });

    it('referral_cycle: A refers B, then B’s code on A’s conversion (and longer chains)', async () => {
      const fixture = await program();
      const a = await buildParticipant(api, fixture);
      const b = uniq('b-');
      expect((await conversion(api, fixture, { externalId: b, code: a.code })).attribution.status).toBe('attributed');
      const bCode = (await participant(api, fixture, b)).code!;

      const answer = await conversion(api, fixture, { externalId: a.externalId, code: bCode });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'referral_cycle' });
      expect((await participant(api, fixture, a.externalId)).referredBy).toBeNull();
      expect(await decisions(api, fixture, 'reason=referral_cycle')).toEqual([
        expect.objectContaining({ outcome: 'rejected', participant: a.externalId, referrer: b }),
      ]);

      // A → B → C, then C's code on A's purchase.
      const c = uniq('c-');
      expect((await conversion(api, fixture, { externalId: c, code: bCode })).attribution).toEqual({ status: 'attributed', referrer: b });
      const cCode = (await participant(api, fixture, c)).code!;
      const purchase = await conversion(api, fixture, {
        type: 'purchase',
        externalId: a.externalId,
        code: cCode,
        amount: 100,
        currency: 'EUR',
      });
      expect(purchase.attribution).toEqual({ status: 'rejected', reason: 'referral_cycle' });
      // …also from the browser.
      await browserEvent(api, fixture, {
        type: 'purchase',
        userId: a.externalId,
        code: cCode,
        order: { id: uniq('order-'), amount: 5, currency: 'EUR' },
      });
      expect((await participant(api, fixture, a.externalId)).referredBy).toBeNull();
      expect(await decisions(api, fixture, 'reason=referral_cycle')).toHaveLength(3);
      expect((await referrals(api, fixture)).data).toHaveLength(2);

      // C's code on a newcomer is not a cycle.
      expect((await conversion(api, fixture, { externalId: uniq('d-'), code: cCode })).attribution).toEqual({
        status: 'attributed',
        referrer: c,
      });
    });

    it('code_disabled: a disabled code, given or clicked', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const visitor = newVid();
      await click(api, fixture, { code: referrer.code, vid: visitor });
      await db('codes').where({ code: referrer.code }).update({ disabled_at: new Date() });

      const user = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: user, code: referrer.code });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'code_disabled' });
      expect(answer.conversion.type).toBe('signup');
      const byClick = await conversion(api, fixture, { externalId: uniq('user-'), vid: visitor });
      expect(byClick.attribution).toEqual({ status: 'rejected', reason: 'code_disabled' });
      expect((await participant(api, fixture, user)).referredBy).toBeNull();
      const found = await decisions(api, fixture, 'reason=code_disabled');
      expect(found).toHaveLength(2);
      for (const decision of found) expect(decision).toMatchObject({ subject: 'attribution', outcome: 'rejected', code: referrer.code });
      expect((await referrals(api, fixture)).data).toEqual([]);
    });

    it("unknown_code: a code nobody has, or another program's code", async () => {
      const fixture = await program();
      const elsewhere = await program();
      const foreign = await buildParticipant(api, elsewhere);
      const user = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: user, code: 'NOSUCHCODE1' });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'unknown_code' });
      const crossProgram = await conversion(api, fixture, { externalId: uniq('user-'), code: foreign.code });
      expect(crossProgram.attribution).toEqual({ status: 'rejected', reason: 'unknown_code' });
      await browserEvent(api, fixture, { userId: uniq('user-'), code: 'NOSUCHCODE2' });

      // The customer and the signup exist; nobody was attributed.
      expect((await participant(api, fixture, user)).referredBy).toBeNull();
      expect(await conversionsOf(fixture, user)).toHaveLength(1);
      const found = await decisions(api, fixture, 'reason=unknown_code');
      expect(found.map((d) => d.code).sort()).toEqual(['NOSUCHCODE1', 'NOSUCHCODE2', foreign.code].sort());
      expect(await decisions(api, elsewhere, 'reason=unknown_code')).toEqual([]);
      expect((await counts(elsewhere)).referrals).toBe(0);
    });

    it('filters decisions by reason: each reason lists only its own', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      await conversion(api, fixture, { externalId: referrer.externalId, code: referrer.code });
      await conversion(api, fixture, { externalId: uniq('user-'), code: 'NOSUCHCODE9' });
      await conversion(api, fixture, { externalId: uniq('user-'), code: referrer.code });
      for (const reason of ['self_referral', 'unknown_code', 'attributed']) {
        const found = await decisions(api, fixture, `reason=${reason}`);
        expect(found, reason).toHaveLength(1);
        expect(found[0]?.reason).toBe(reason);
      }
      expect(await decisions(api, fixture, 'reason=velocity')).toEqual([]);
      expect((await decisions(api, fixture, 'outcome=rejected')).map((d) => d.reason).sort()).toEqual(['self_referral', 'unknown_code']);
      const bad = await api.get('/v1/decisions?reason=Not-A-Reason', { auth: fixture.secret });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ code: 'invalid_query', fields: { reason: expect.any(String) } });
    });
  });

  // ---- holds ----------------------------------------------------------------------------

  describe('holds', () => {
    it('holds signups past fraud.velocityMax for one referrer from one address within velocityMinutes', async () => {
      const fixture = await program();
      await configure(fixture, { fraud: { velocityMax: 2, velocityMinutes: 60, disposableDomains: [] } });
      const referrer = await buildParticipant(api, fixture);
      const users = [uniq('v0-'), uniq('v1-'), uniq('v2-')];
      for (const user of users) await browserEvent(api, fixture, { userId: user, code: referrer.code });

      const page = await referrals(api, fixture, `referrer=${referrer.externalId}`);
      const byUser = new Map(page.data.map((r) => [r.referred, r]));
      expect(byUser.get(users[0]!)).toMatchObject({ status: 'attributed', reason: null });
      expect(byUser.get(users[1]!)).toMatchObject({ status: 'attributed', reason: null });
      expect(byUser.get(users[2]!)).toMatchObject({ status: 'held', reason: 'velocity' });
      expect((await referrals(api, fixture, 'status=held')).data.map((r) => r.referred)).toEqual([users[2]]);
      expect(await decisions(api, fixture, 'reason=velocity')).toEqual([
        expect.objectContaining({ subject: 'attribution', outcome: 'held', participant: users[2], referrer: referrer.externalId }),
      ]);
      expect(await decisions(api, fixture, 'outcome=held')).toHaveLength(1);

      // The server's answer for the held customer says so.
      const confirm = await conversion(api, fixture, { externalId: users[2]!, eventId: uniq('srv-') });
      expect(confirm.attribution).toMatchObject({ status: 'existing', referrer: referrer.externalId, held: true });

      // Another referrer from the same address is not affected.
      const other = await buildParticipant(api, fixture);
      const fresh = uniq('w-');
      await browserEvent(api, fixture, { userId: fresh, code: other.code });
      expect((await referrals(api, fixture, `referrer=${other.externalId}`)).data).toEqual([
        expect.objectContaining({ referred: fresh, status: 'attributed' }),
      ]);

      // Once the earlier signups are older than velocityMinutes, the next one is not held.
      await db('referrals')
        .where({ program_id: fixture.id })
        .update({ created_at: new Date(Date.now() - 61 * 60_000) });
      const later = uniq('v3-');
      await browserEvent(api, fixture, { userId: later, code: referrer.code });
      expect((await referrals(api, fixture, `referrer=${referrer.externalId}`)).data.find((r) => r.referred === later)).toMatchObject({
        status: 'attributed',
      });
    });

    it('holds a built-in disposable email domain: attributed, held, reason disposable_email', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const user = uniq('user-');
      const answer = await conversion(api, fixture, { externalId: user, email: `Someone@Mailinator.com`, code: referrer.code });
      expect(answer.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId, held: true, reason: 'disposable_email' });
      expect((await referrals(api, fixture)).data).toEqual([
        expect.objectContaining({ referred: user, status: 'held', reason: 'disposable_email' }),
      ]);
      expect(await decisions(api, fixture, 'reason=disposable_email')).toEqual([
        expect.objectContaining({ subject: 'attribution', outcome: 'held', participant: user, referrer: referrer.externalId }),
      ]);
      expect((await participant(api, fixture, user)).referredBy).toBe(referrer.externalId);
    });

    it('holds the domains listed in fraud.disposableDomains, and nothing else', async () => {
      const fixture = await program();
      await configure(fixture, { fraud: { velocityMax: 3, velocityMinutes: 60, disposableDomains: ['Throwaway.Test'] } });
      const referrer = await buildParticipant(api, fixture);
      const held = await conversion(api, fixture, { externalId: uniq('user-'), email: 'x@throwaway.test', code: referrer.code });
      expect(held.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId, held: true, reason: 'disposable_email' });
      const browserUser = uniq('user-');
      await browserEvent(api, fixture, { userId: browserUser, email: 'y@THROWAWAY.test', code: referrer.code });
      const fine = await conversion(api, fixture, { externalId: uniq('user-'), email: 'z@example.org', code: referrer.code });
      expect(fine.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });
      const statuses = (await referrals(api, fixture)).data.map((r) => r.status).sort();
      expect(statuses).toEqual(['attributed', 'held', 'held']);
      expect((await referrals(api, fixture, 'status=held')).data.map((r) => r.referred)).toContain(browserUser);
    });
  });

  // ---- confirmation ---------------------------------------------------------------------

  describe('confirmation by the server', () => {
    it('a server signup for a customer first seen in the browser confirms it, when it carries the same referral', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const user = uniq('user-');
      const sent = await browserEvent(api, fixture, { userId: user, code: referrer.code });
      expect((await referrals(api, fixture)).data).toEqual([expect.objectContaining({ referred: user, verified: false })]);
      const before = await counts(fixture);

      // What referral.get() handed the host's backend: the visitor id the browser had.
      const answer = await conversion(api, fixture, { externalId: user, eventId: uniq('srv-'), vid: sent.vid });
      expect(answer.attribution).toEqual({ status: 'existing', referrer: referrer.externalId });
      expect(answer.conversion).toMatchObject({ type: 'signup', externalId: user, verified: true });

      expect((await referrals(api, fixture)).data).toEqual([
        expect.objectContaining({ referred: user, verified: true, status: 'attributed' }),
      ]);
      const stored = await conversionsOf(fixture, user);
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ event_id: sent.eventId, verified: true });
      expect(await decisions(api, fixture, 'reason=confirmed')).toEqual([
        expect.objectContaining({ subject: 'conversion', outcome: 'accepted', participant: user, eventId: sent.eventId }),
      ]);
      const after = await counts(fixture);
      expect({ ...after, decisions: before.decisions }).toEqual(before);
    });

    it('a server purchase with the browser purchase’s order id confirms that purchase, stored once', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const user = uniq('user-');
      await conversion(api, fixture, { externalId: user, code: referrer.code });
      const order = { id: uniq('order-'), amount: 4200, currency: 'eur' };
      await browserEvent(api, fixture, { type: 'purchase', userId: user, eventId: uniq('ignored-'), order });
      const [browserPurchase] = (await conversionsOf(fixture, user)).filter((row) => row.type === 'purchase');
      expect(browserPurchase).toMatchObject({ event_id: order.id, verified: false, amount: 4200, currency: 'EUR' });

      const answer = await conversion(api, fixture, {
        type: 'purchase',
        externalId: user,
        eventId: order.id,
        amount: 4200,
        currency: 'EUR',
      });
      expect(answer.conversion).toMatchObject({ type: 'purchase', eventId: order.id, verified: true, amount: 4200, currency: 'EUR' });
      expect(answer.attribution).toMatchObject({ referrer: referrer.externalId });
      const purchases = (await conversionsOf(fixture, user)).filter((row) => row.type === 'purchase');
      expect(purchases).toHaveLength(1);
      expect(purchases[0]?.verified).toBe(true);
      expect(await decisions(api, fixture, 'reason=confirmed')).toHaveLength(1);
      expect((await participant(api, fixture, referrer.externalId)).stats).toMatchObject({ purchases: 1, revenue: { EUR: 4200 } });
    });
  });

  // ---- idempotency ----------------------------------------------------------------------

  describe('idempotency', () => {
    it('a retried conversion returns the first answer and writes nothing', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const other = await buildParticipant(api, fixture);
      const input = { externalId: uniq('user-'), eventId: uniq('evt-'), code: referrer.code };
      const first = await conversion(api, fixture, input);
      const before = await counts(fixture);
      const again = await conversion(api, fixture, input);
      expect(again).toEqual(first);
      // The same event id with another body is still the same event.
      const changed = await conversion(api, fixture, { ...input, code: other.code, email: 'late@example.com' });
      expect(changed).toEqual(first);
      expect(await counts(fixture)).toEqual(before);

      const purchase = { type: 'purchase' as const, externalId: input.externalId, eventId: uniq('order-'), amount: 990, currency: 'USD' };
      const bought = await conversion(api, fixture, purchase);
      const mid = await counts(fixture);
      expect(await conversion(api, fixture, purchase)).toEqual(bought);
      expect(await counts(fixture)).toEqual(mid);
    });

    it('a retried conversion that was rejected writes nothing either', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const input = { externalId: referrer.externalId, eventId: uniq('evt-'), code: referrer.code };
      const first = await conversion(api, fixture, input);
      expect(first.attribution.reason).toBe('self_referral');
      const before = await counts(fixture);
      expect(await conversion(api, fixture, input)).toEqual(first);
      expect(await counts(fixture)).toEqual(before);
    });

    it('a retried browser event writes nothing', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const sent = await browserEvent(api, fixture, { userId: uniq('user-'), code: referrer.code });
      const before = await counts(fixture);
      for (let i = 0; i < 2; i++) {
        const reply = await api.post('/v1/events', sent);
        expect(reply.status).toBe(202);
      }
      expect(await counts(fixture)).toEqual(before);
    });

    it('a second signup for the same customer with another event id answers existing and is stored once', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const other = await buildParticipant(api, fixture);
      const user = uniq('user-');
      const first = await conversion(api, fixture, { externalId: user, code: referrer.code });
      const before = await counts(fixture);
      const second = await conversion(api, fixture, { externalId: user, eventId: uniq('evt-'), code: other.code });
      expect(second.attribution).toEqual({ status: 'existing', referrer: referrer.externalId });
      expect(second.conversion.id).toBe(first.conversion.id);
      const after = await counts(fixture);
      expect(after.conversions).toBe(before.conversions);
      expect(after.referrals).toBe(before.referrals);
      expect(after.participants).toBe(before.participants);
      expect(await conversionsOf(fixture, user)).toHaveLength(1);
      expect(await decisions(api, fixture, 'reason=duplicate_event')).toEqual([
        expect.objectContaining({ subject: 'conversion', participant: user }),
      ]);
    });

    it('retrying that second signup (same event id) writes nothing new', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const user = uniq('user-');
      await conversion(api, fixture, { externalId: user, code: referrer.code });
      const duplicate = { externalId: user, eventId: uniq('dup-') };
      const first = await conversion(api, fixture, duplicate);
      const before = await counts(fixture);
      const again = await conversion(api, fixture, duplicate);
      expect(again).toEqual(first);
      expect(await counts(fixture)).toEqual(before);
    });

    it('Idempotency-Key: the same key and body replays the answer; another body is a 409', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const key = uniq('idem-');
      const input = { externalId: uniq('user-'), eventId: uniq('evt-'), code: referrer.code, idempotencyKey: key };
      const first = await sendConversion(api, fixture, input);
      expect(first.status, first.text).toBe(200);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      const before = await counts(fixture);

      const replay = await sendConversion(api, fixture, input);
      expect(replay.status).toBe(200);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body).toEqual(first.body);
      expect(await counts(fixture)).toEqual(before);

      const reused = await sendConversion(api, fixture, { ...input, eventId: uniq('evt-') });
      expect(reused.status).toBe(409);
      expect(reused.body).toEqual({ error: { code: 'idempotency_key_reused', message: expect.any(String) } });
      expect(await counts(fixture)).toEqual(before);

      // Keys belong to their program: another program may use the same key.
      const elsewhere = await program();
      const theirs = await sendConversion(api, elsewhere, { externalId: uniq('user-'), idempotencyKey: key });
      expect(theirs.status, theirs.text).toBe(200);
      expect(theirs.headers.get('idempotent-replayed')).toBeNull();
      expect(theirs.body.conversion.id).not.toBe(first.body.conversion.id);
    });

    it('Idempotency-Key works on POST /v1/participants as well', async () => {
      const fixture = await program();
      const key = uniq('idem-');
      const body = { externalId: uniq('user-'), email: 'p@example.com' };
      const first = await api.post('/v1/participants', body, { auth: fixture.secret, headers: { 'idempotency-key': key } });
      expect(first.status).toBe(201);
      const replay = await api.post('/v1/participants', body, { auth: fixture.secret, headers: { 'idempotency-key': key } });
      expect(replay.status).toBe(201);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body).toEqual(first.body);
      const reused = await api.post(
        '/v1/participants',
        { ...body, email: 'q@example.com' },
        { auth: fixture.secret, headers: { 'idempotency-key': key } },
      );
      expect(reused.status).toBe(409);
      expect(reused.body.error.code).toBe('idempotency_key_reused');
    });
  });

  // ---- listings and stats ---------------------------------------------------------------

  describe('listings and stats', () => {
    it('GET /v1/referrals pages with limit and nextCursor, newest first, and filters by referrer', async () => {
      const fixture = await program();
      const a = await buildParticipant(api, fixture);
      const b = await buildParticipant(api, fixture);
      const aReferred: string[] = [];
      for (let i = 0; i < 5; i++) {
        const user = uniq(`a${i}-`);
        aReferred.push(user);
        await conversion(api, fixture, { externalId: user, code: a.code });
        if (i < 2) await conversion(api, fixture, { externalId: uniq(`b${i}-`), code: b.code });
      }

      const seen: ReferralResponse[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Page<ReferralResponse> = await referrals(
          api,
          fixture,
          `referrer=${encodeURIComponent(a.externalId)}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(page.data.length).toBeLessThanOrEqual(2);
        seen.push(...page.data);
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 10);
      expect(pages).toBe(3);
      expect(seen.map((r) => r.referred)).toEqual([...aReferred].reverse());
      expect(new Set(seen.map((r) => r.id)).size).toBe(5);
      for (const item of seen) expect(item).toMatchObject({ referrer: a.externalId, code: a.code });
      const times = seen.map((r) => Date.parse(r.createdAt));
      expect([...times].sort((x, y) => y - x)).toEqual(times);

      expect((await referrals(api, fixture)).data).toHaveLength(7);
      expect((await referrals(api, fixture, `referrer=${encodeURIComponent(b.externalId)}`)).data).toHaveLength(2);
      expect((await referrals(api, fixture, 'referrer=nobody')).data).toEqual([]);
      const all = await referrals(api, fixture, 'limit=7');
      expect(all.data).toHaveLength(7);
      expect(all.nextCursor).toBeNull();

      const badCursor = await api.get('/v1/referrals?cursor=not-a-cursor', { auth: fixture.secret });
      expect(badCursor.status).toBe(400);
      expect(badCursor.body.error.code).toBe('invalid_cursor');
      for (const limit of ['0', '501', 'x']) {
        const reply = await api.get(`/v1/referrals?limit=${limit}`, { auth: fixture.secret });
        expect(reply.status, limit).toBe(400);
        expect(reply.body.error).toMatchObject({ code: 'invalid_query', fields: { limit: expect.any(String) } });
      }
    });

    /** Walks a listing page by page; returns the ids in order. */
    async function walk(fixture: ProgramFixture, path: string, limit: number): Promise<string[]> {
      const ids: string[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < 100; page++) {
        const reply: Reply<Page<{ id: string }>> = await api.get(`${path}?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, {
          auth: fixture.secret,
        });
        expect(reply.status, reply.text).toBe(200);
        expect(reply.body.data.length).toBeLessThanOrEqual(limit);
        ids.push(...reply.body.data.map((item) => item.id));
        cursor = reply.body.nextCursor;
        if (!cursor) return ids;
      }
      throw new Error(`${path} never ended`);
    }

    it('pages through every referral and decision exactly once, even when many share a timestamp', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      for (let i = 0; i < 3; i++) {
        const user = uniq('user-');
        await browserEvent(api, fixture, { userId: user, code: referrer.code });
        await conversion(api, fixture, { externalId: user, eventId: uniq('srv-') });
      }
      for (let i = 0; i < 4; i++) await conversion(api, fixture, { externalId: uniq('user-'), code: referrer.code });
      await conversion(api, fixture, { externalId: uniq('user-'), code: 'NOSUCHCODE3' });
      // Test setup: many rows in the same microsecond (as in one transaction), finer than a cursor's milliseconds.
      for (const table of ['decisions', 'referrals']) {
        const ids = (await db(table).where({ program_id: fixture.id }).orderBy('id').select('id')).map(
          (row: { id: string | number }) => row.id,
        );
        await db(table)
          .whereIn('id', ids.slice(0, Math.ceil(ids.length / 2)))
          .update({ created_at: db.raw(`'2026-01-02T03:04:05.678901Z'::timestamptz`) });
        await db(table)
          .whereIn('id', ids.slice(Math.ceil(ids.length / 2)))
          .update({ created_at: db.raw(`'2026-01-02T03:04:05.678999Z'::timestamptz`) });
      }
      const everyDecision = (await decisions(api, fixture)).map((d) => d.id);
      const everyReferral = (await referrals(api, fixture, 'limit=500')).data.map((r) => r.id);
      expect(everyDecision.length).toBeGreaterThanOrEqual(11);
      expect(everyReferral).toHaveLength(7);
      for (const limit of [1, 2, 5]) {
        expect(await walk(fixture, '/v1/decisions', limit), `decisions, limit ${limit}`).toEqual(everyDecision);
        expect(await walk(fixture, '/v1/referrals', limit), `referrals, limit ${limit}`).toEqual(everyReferral);
      }
    });

    it('GET /v1/participants/:externalId counts clicks, and the signups, purchases and revenue of the people referred', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const bystander = await buildParticipant(api, fixture);
      const visitors = [newVid(), newVid()];
      for (const visitor of visitors) await click(api, fixture, { code: referrer.code, vid: visitor });
      await click(api, fixture, { code: referrer.code, vid: visitors[0]! }); // deduplicated
      await click(api, fixture, { code: bystander.code, vid: newVid() });

      const b = uniq('b-');
      const c = uniq('c-');
      await conversion(api, fixture, { externalId: b, vid: visitors[0] });
      await browserEvent(api, fixture, { userId: c, code: referrer.code });
      await conversion(api, fixture, { type: 'purchase', externalId: b, amount: 1000, currency: 'USD' });
      await conversion(api, fixture, { type: 'purchase', externalId: b, amount: 250, currency: 'eur' });
      await browserEvent(api, fixture, { type: 'purchase', userId: c, order: { id: uniq('order-'), amount: 500, currency: 'usd' } });
      // Not referred by them: does not count.
      await conversion(api, fixture, { type: 'purchase', externalId: bystander.externalId, amount: 999, currency: 'USD' });
      await conversion(api, fixture, { type: 'purchase', externalId: uniq('stranger-'), amount: 777, currency: 'USD' });
      // Retried purchases count once.
      const retried = { type: 'purchase' as const, externalId: c, eventId: uniq('order-'), amount: 100, currency: 'USD' };
      await conversion(api, fixture, retried);
      await conversion(api, fixture, retried);

      const found = await participant(api, fixture, referrer.externalId);
      expect(found.stats).toEqual({ clicks: 2, signups: 2, purchases: 4, revenue: { USD: 1600, EUR: 250 } });
      expect((await participant(api, fixture, bystander.externalId)).stats).toEqual({ clicks: 1, signups: 0, purchases: 0, revenue: {} });
      expect((await participant(api, fixture, b)).stats).toEqual({ clicks: 0, signups: 0, purchases: 0, revenue: {} });
      expect((await participant(api, fixture, b)).referredBy).toBe(referrer.externalId);
    });
  });

  // ---- tenants and keys ----------------------------------------------------------------

  describe('tenant isolation', () => {
    it("another program's secret key never sees these referrals, decisions or participants", async () => {
      const mine = await program();
      const theirs = await program();
      const referrer = await buildParticipant(api, mine);
      const user = uniq('user-');
      await conversion(api, mine, { externalId: user, code: referrer.code });
      await conversion(api, mine, { externalId: referrer.externalId, code: referrer.code });
      expect((await referrals(api, mine)).data).toHaveLength(1);

      expect((await referrals(api, theirs)).data).toEqual([]);
      expect((await referrals(api, theirs, `referrer=${encodeURIComponent(referrer.externalId)}`)).data).toEqual([]);
      expect(await decisions(api, theirs)).toEqual([]);
      expect(await decisions(api, theirs, `participant=${encodeURIComponent(user)}`)).toEqual([]);
      for (const externalId of [user, referrer.externalId]) {
        const reply = await api.get(`/v1/participants/${encodeURIComponent(externalId)}`, { auth: theirs.secret });
        expect(reply.status).toBe(404);
      }
    });

    it('clicks recorded in one program do not attribute in another', async () => {
      const mine = await program();
      const theirs = await program();
      const referrer = await buildParticipant(api, mine);
      const visitor = newVid();
      await click(api, mine, { code: referrer.code, vid: visitor });
      const answer = await conversion(api, theirs, { externalId: uniq('user-'), vid: visitor });
      expect(answer.attribution).toEqual({ status: 'none', reason: 'no_referral_data' });
      expect((await counts(theirs)).referrals).toBe(0);
    });

    it('refuses a publishable key (and no key) on /v1/conversions with 401, writing nothing', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const before = await counts(fixture);
      const body = { type: 'signup', eventId: uniq('evt-'), externalId: uniq('user-'), referral: { code: referrer.code } };
      for (const auth of [fixture.publishable, undefined, 'sk_not_a_real_key_000000000000']) {
        const reply = await api.post('/v1/conversions', body, auth ? { auth } : {});
        expect(reply.status, String(auth)).toBe(401);
        expect(reply.body.error.code).toBe('unauthorized');
      }
      for (const path of ['/v1/referrals', '/v1/decisions']) {
        expect((await api.get(path, { auth: fixture.publishable })).status).toBe(401);
      }
      expect(await counts(fixture)).toEqual(before);
    });
  });

  // ---- input edges ----------------------------------------------------------------------

  describe('input edges', () => {
    it('answers 422 with field messages to a purchase without amount or currency, writing nothing', async () => {
      const fixture = await program();
      const before = await counts(fixture);
      const reply = await sendConversion(api, fixture, { type: 'purchase', externalId: uniq('user-') });
      expect(reply.status).toBe(422);
      const error = (reply.body as ErrorBody).error;
      expect(error.code).toBe('validation_failed');
      expect(Object.keys(error.fields ?? {}).sort()).toEqual(['amount', 'currency']);
      const event = await api.post('/v1/events', {
        key: fixture.publishable,
        type: 'purchase',
        eventId: uniq('e-'),
        vid: newVid(),
        user: { id: 'x' },
      });
      expect(event.status).toBe(422);
      expect(event.body.error.fields).toHaveProperty('order');
      expect(await counts(fixture)).toEqual(before);
    });

    it('never answers 500 to a NUL byte in a code, externalId or eventId', async () => {
      const fixture = await program();
      const referrer = await buildParticipant(api, fixture);
      const inputs: ConversionInput[] = [
        { externalId: uniq('user-'), code: `${referrer.code}\u0000` },
        { externalId: `nul\u0000${uniq()}` },
        { externalId: uniq('user-'), eventId: `evt\u0000${uniq()}` },
      ];
      for (const input of inputs) {
        const reply = await sendConversion(api, fixture, input);
        expect(reply.status, `${JSON.stringify(input)}: ${reply.text}`).toBeLessThan(500);
      }
      const event = await api.post('/v1/events', {
        key: fixture.publishable,
        type: 'signup',
        eventId: uniq('e-'),
        vid: newVid(),
        code: '\u0000',
        user: { id: uniq('u-') },
      });
      expect(event.status, event.text).toBeLessThan(500);
      for (const path of ['/v1/referrals?referrer=a%00b', '/v1/decisions?participant=a%00b']) {
        const reply = await api.get(path, { auth: fixture.secret });
        expect(reply.status, `${path}: ${reply.text}`).toBeLessThan(500);
      }
    });
  });
});
