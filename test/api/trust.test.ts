/**
 * The trust rules (DESIGN, "Trust rules"), each written as the attack that broke them,
 * through the real app on every database. What a browser sends (publishable key) never
 * sets the money nor wins the attribution: a server report (secret key, or a verified
 * Stripe webhook) is authoritative.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, newVid, type ProgramFixture, uniq } from '../helpers/factories.ts';
import {
  browserEvent,
  conversion,
  decisions,
  expectOk,
  listAllRewards,
  participant,
  referrals,
  refund,
  serverPurchase,
  summary,
  transition,
} from '../helpers/steps.ts';
import type { RewardResponse } from '../../shared/responses.ts';
import { checkoutSession, deliverStripe, stripeEvent } from '../helpers/stripe.ts';
import { useTestApp } from '../helpers/suite.ts';

const SHARE = { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 } };
const WELCOME = { id: 'welcome', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 1000, currency: 'USD' } };
const WEBHOOK_SECRET = 'whsec_trust_suite_0123456789abcdef';

describe.each(DATABASES)('trust rules (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  const shop = (rules: unknown[] = [SHARE, WELCOME], settings: Record<string, unknown> = {}) =>
    buildProgram(api, { settings: { rewardRules: rules, stripe: { webhookSecret: WEBHOOK_SECRET }, ...settings } });

  const rewardsOf = (rewards: RewardResponse[], who: string) => rewards.filter((reward) => reward.participant === who);

  /** A new customer's purchase as the browser reports it, naming `code`. */
  const browserPurchase = async (p: ProgramFixture, code: string, amount: number, currency: string) => {
    const buyer = uniq('buyer-');
    const orderId = uniq('order-');
    await browserEvent(api, p, { type: 'purchase', userId: buyer, code, order: { id: orderId, amount, currency } });
    return { buyer, orderId };
  };

  describe('1. a forged browser purchase never sets the reward the server confirms', () => {
    it('the server’s amount and currency replace the browser’s, and the reward is computed from them', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const { buyer, orderId } = await browserPurchase(p, attacker.code, 1e12, 'EUR');

      const answer = await conversion(api, p, { type: 'purchase', eventId: orderId, externalId: buyer, amount: 4900, currency: 'USD' });
      expect(answer.conversion).toMatchObject({ eventId: orderId, amount: 4900, currency: 'USD', verified: true });

      const rewards = rewardsOf(await listAllRewards(api, p), attacker.externalId);
      expect(rewards.map((reward) => [reward.amount, reward.currency])).toEqual([[980, 'USD']]);
      // The referral was made by the browser and the server did not name it: still for review.
      expect(rewards[0]?.status).toBe('pending');
      expect(rewards[0]?.needsReview).toBe(true);

      // Revenue per currency: the forged EUR nets to nothing.
      const stats = (await participant(api, p, attacker.externalId)).stats;
      expect(stats.revenue).toMatchObject({ USD: 4900 });
      expect(stats.revenue.EUR ?? 0).toBe(0);
      const report = await summary(api, p);
      expect(JSON.stringify(report)).not.toContain('1000000000000');
      expect(await decisions(api, p, 'reason=unconfirmed_referral')).toHaveLength(1);
    });

    it('a server report naming the same referral confirms it, with the server’s figures', async () => {
      const p = await shop();
      const referrer = await buildParticipant(api, p);
      const buyer = uniq('buyer-');
      const orderId = uniq('order-');
      const visitor = newVid();
      await browserEvent(api, p, {
        type: 'purchase',
        userId: buyer,
        code: referrer.code,
        vid: visitor,
        order: { id: orderId, amount: 500_000, currency: 'USD' },
      });
      const answer = await conversion(api, p, {
        type: 'purchase',
        eventId: orderId,
        externalId: buyer,
        amount: 4900,
        currency: 'USD',
        referral: { vid: visitor },
      });
      // The browser's event made the referral; the server confirms it.
      expect(answer.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });
      expect(answer.rewards.map((reward: RewardResponse) => [reward.amount, reward.status])).toEqual([[980, 'approved']]);
    });

    it('a server report for another customer leaves the browser event unverified (mismatch) and records its own purchase', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const orderId = uniq('order-');
      const sockPuppet = uniq('puppet-');
      await browserEvent(api, p, {
        type: 'purchase',
        userId: sockPuppet,
        code: attacker.code,
        order: { id: orderId, amount: 1e12, currency: 'USD' },
      });

      const realBuyer = uniq('buyer-');
      const answer = await conversion(api, p, { type: 'purchase', eventId: orderId, externalId: realBuyer, amount: 4900, currency: 'USD' });
      expect(answer.conversion).toMatchObject({ eventId: orderId, externalId: realBuyer, amount: 4900, verified: true });
      expect(answer.attribution.status).toBe('none');
      expect(answer.rewards).toEqual([]);

      const mismatch = await decisions(api, p, 'reason=mismatch');
      expect(mismatch).toEqual([expect.objectContaining({ subject: 'conversion', outcome: 'rejected', participant: sockPuppet })]);
      const rewards = rewardsOf(await listAllRewards(api, p), attacker.externalId);
      expect(rewards.map((reward) => reward.status)).toEqual(['pending']);
      expect(rewards[0]?.needsReview).toBe(true);

      // The server's purchase is stored once; a retry replays it.
      const again = await conversion(api, p, { type: 'purchase', eventId: orderId, externalId: realBuyer, amount: 4900, currency: 'USD' });
      expect(again.conversion.id).toBe(answer.conversion.id);
      const stored = await db('conversions').where({ program_id: p.id, type: 'purchase', event_id: orderId });
      expect(stored).toHaveLength(1);
      expect(stored[0].verified).toBe(true);
    });

    // Found by the rewards property (seed -1563533300): the moved referral's grant skipped the refunds recorded before it.
    it.each([
      { refunded: undefined, net: 0 },
      { refunded: 1225, net: 735 },
    ])(
      'a browser purchase refunded ($refunded of 4900), then the server names another referrer: the new grant nets the refunds',
      async ({ refunded, net }) => {
        const p = await shop([SHARE]);
        const attacker = await buildParticipant(api, p);
        const referrer = await buildParticipant(api, p);
        const { buyer, orderId } = await browserPurchase(p, attacker.code, 4900, 'USD');
        await refund(api, p, { eventId: uniq('refund-'), purchaseEventId: orderId, ...(refunded ? { amount: refunded } : {}) });

        const answer = await serverPurchase(api, p, buyer, orderId, 4900, 'USD', referrer.code);
        expect(answer.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });
        const rewards = await listAllRewards(api, p);
        const live = (who: string) =>
          rewardsOf(rewards, who)
            .filter((reward) => reward.status !== 'revoked')
            .reduce((sum, reward) => sum + reward.amount, 0);
        expect(live(referrer.externalId)).toBe(net);
        expect(live(attacker.externalId)).toBe(0);
        expect((await participant(api, p, referrer.externalId)).stats.revenue.USD ?? 0).toBe(4900 - (refunded ?? 4900));
      },
    );

    it('through Stripe: the checkout session’s amount replaces the forged one', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const session = checkoutSession({ currency: 'usd', amount: 4900, metadata: { externalId: uniq('buyer-') } });
      const buyer = (session.metadata as Record<string, string>).externalId as string;
      await browserEvent(api, p, {
        type: 'purchase',
        userId: buyer,
        code: attacker.code,
        order: { id: session.id as string, amount: 1e12, currency: 'USD' },
      });

      const reply = await deliverStripe(api, p.slug, stripeEvent('checkout.session.completed', session), { secret: WEBHOOK_SECRET });
      expect(reply.status, reply.text).toBe(200);
      const rewards = rewardsOf(await listAllRewards(api, p), attacker.externalId);
      // The purchase share from Stripe's figures; the welcome reward for the signup Stripe implies waits for review too.
      expect(rewards.map((reward) => [reward.rule, reward.amount, reward.status]).sort()).toEqual([
        ['share', 980, 'pending'],
        ['welcome', 1000, 'pending'],
      ]);
      expect((await participant(api, p, attacker.externalId)).stats.revenue).toEqual({ USD: 4900 });
    });
  });

  describe('2. a forged browser signup never takes the real signup’s attribution', () => {
    it('a server signup naming no referral leaves the browser-made referral unconfirmed, its rewards pending', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const victim = uniq('u-');
      await browserEvent(api, p, { type: 'signup', userId: victim, code: attacker.code });

      const answer = await conversion(api, p, { type: 'signup', eventId: `signup-${victim}`, externalId: victim });
      expect(answer.attribution).toMatchObject({ status: 'existing', referrer: attacker.externalId, reason: 'unconfirmed_referral' });
      expect(answer.rewards.every((reward: RewardResponse) => reward.status === 'pending')).toBe(true);
      const rewards = rewardsOf(await listAllRewards(api, p), attacker.externalId);
      expect(rewards.map((reward) => [reward.rule, reward.status])).toEqual([['welcome', 'pending']]);
      expect((await referrals(api, p, 'limit=500')).data[0]).toMatchObject({ referrer: attacker.externalId, verified: false });
      expect(await decisions(api, p, 'reason=unconfirmed_referral')).toEqual([
        expect.objectContaining({ participant: victim, referrer: attacker.externalId }),
      ]);

      // A later server purchase by that customer stays for review too.
      const purchase = await conversion(api, p, {
        type: 'purchase',
        eventId: uniq('order-'),
        externalId: victim,
        amount: 1000,
        currency: 'USD',
      });
      expect(purchase.rewards.map((reward: RewardResponse) => reward.status)).toEqual(['pending']);
    });

    it('a server signup naming another referrer wins: the customer is attributed to them, the forged referral’s rewards revoked', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const friend = await buildParticipant(api, p);
      const victim = uniq('u-');
      await browserEvent(api, p, { type: 'signup', userId: victim, code: attacker.code });

      const answer = await conversion(api, p, {
        type: 'signup',
        eventId: `signup-${victim}`,
        externalId: victim,
        referral: { code: friend.code },
      });
      expect(answer.attribution).toMatchObject({ status: 'attributed', referrer: friend.externalId });
      expect((await participant(api, p, victim)).referredBy).toBe(friend.externalId);
      const rewards = await listAllRewards(api, p);
      expect(rewardsOf(rewards, attacker.externalId).map((reward) => reward.status)).toEqual(['revoked']);
      expect(rewardsOf(rewards, friend.externalId).map((reward) => [reward.rule, reward.status])).toEqual([['welcome', 'approved']]);
      expect((await participant(api, p, attacker.externalId)).stats.signups).toBe(0);
      expect((await participant(api, p, friend.externalId)).stats.signups).toBe(1);
      expect(await decisions(api, p, 'reason=server_override')).toHaveLength(1);
    });

    it('a server signup naming another referrer moves a referral a later browser purchase made, but the signup before it earns nothing (found by the rewards property)', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const friend = await buildParticipant(api, p);
      const customer = uniq('u-');
      await browserEvent(api, p, { type: 'signup', eventId: `signup-${customer}`, userId: customer });
      await browserEvent(api, p, {
        type: 'purchase',
        userId: customer,
        code: attacker.code,
        order: { id: uniq('order-'), amount: 5000, currency: 'USD' },
      });

      const answer = await conversion(api, p, {
        type: 'signup',
        eventId: `signup-${customer}`,
        externalId: customer,
        referral: { code: friend.code },
      });
      expect(answer.attribution).toMatchObject({ status: 'attributed', referrer: friend.externalId });
      expect((await participant(api, p, customer)).referredBy).toBe(friend.externalId);
      // The referral keeps its time, the purchase's: the signup came before it.
      const rewards = await listAllRewards(api, p);
      expect(rewardsOf(rewards, attacker.externalId).map((reward) => [reward.rule, reward.status])).toEqual([['share', 'revoked']]);
      expect(rewardsOf(rewards, friend.externalId)).toEqual([]);
      expect((await participant(api, p, friend.externalId)).stats).toMatchObject({ signups: 1, purchases: 1 });
      expect((await participant(api, p, attacker.externalId)).stats).toMatchObject({ signups: 0, purchases: 0 });
    });

    it('a server purchase naming another referrer moves the referral, and the purchase counts once, for them (found by the batch property)', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const friend = await buildParticipant(api, p);
      const customer = uniq('u-');
      await browserEvent(api, p, { type: 'signup', eventId: `signup-${customer}`, userId: customer, code: attacker.code });

      const answer = await serverPurchase(api, p, customer, uniq('order-'), 5000, 'USD', friend.code);
      expect(answer.attribution).toMatchObject({ status: 'attributed', referrer: friend.externalId });
      // Recorded as it moved the referral: counted for no one before, so nothing moves with it.
      expect((await participant(api, p, friend.externalId)).stats).toMatchObject({ signups: 1, purchases: 1 });
      expect((await participant(api, p, attacker.externalId)).stats).toMatchObject({ signups: 0, purchases: 0 });
      expect(await summary(api, p)).toMatchObject({ signups: 1, purchases: 1 });
    });

    it('a server signup naming another referrer leaves a referral whose referrer was paid already, for the operator (found by the rewards property)', async () => {
      const p = await shop();
      const browserReferrer = await buildParticipant(api, p);
      const serverReferrer = await buildParticipant(api, p);
      const customer = uniq('u-');
      await browserEvent(api, p, { type: 'signup', userId: customer, code: browserReferrer.code });
      const [welcome] = rewardsOf(await listAllRewards(api, p), browserReferrer.externalId);
      const approved = await api.post(`/v1/rewards/${welcome?.id}/approve`, { force: true, reason: 'checked by hand' }, { auth: p.secret });
      expect(approved.status, approved.text).toBe(200);
      expect((await transition(api, p, welcome?.id as string, 'pay', 'paid by hand')).status).toBe(200);

      const answer = await conversion(api, p, {
        type: 'signup',
        eventId: `signup-${customer}`,
        externalId: customer,
        referral: { code: serverReferrer.code },
      });
      // Money went to the browser's referrer: the referral stays theirs, unconfirmed, and the
      // server's referrer is on record for whoever settles it.
      expect(answer.attribution).toMatchObject({
        status: 'existing',
        referrer: browserReferrer.externalId,
        reason: 'unconfirmed_referral',
      });
      expect((await participant(api, p, customer)).referredBy).toBe(browserReferrer.externalId);
      const rewards = await listAllRewards(api, p);
      expect(rewardsOf(rewards, browserReferrer.externalId).map((reward) => reward.status)).toEqual(['paid']);
      expect(rewardsOf(rewards, serverReferrer.externalId)).toEqual([]);
      const [decision] = await decisions(api, p, 'reason=unconfirmed_referral');
      expect(decision).toMatchObject({ outcome: 'held', details: { serverReferrer: serverReferrer.externalId, paid: true } });
    });

    it('a server signup carrying the same code confirms the referral', async () => {
      const p = await shop();
      const referrer = await buildParticipant(api, p);
      const user = uniq('u-');
      await browserEvent(api, p, { type: 'signup', userId: user, code: referrer.code });
      const answer = await conversion(api, p, {
        type: 'signup',
        eventId: `signup-${user}`,
        externalId: user,
        referral: { code: referrer.code.toLowerCase() },
      });
      expect(answer.attribution).toEqual({ status: 'existing', referrer: referrer.externalId });
      expect(answer.rewards.map((reward: RewardResponse) => reward.status)).toEqual(['approved']);
    });

    it('through Stripe: a checkout naming the customer but no referral confirms nothing', async () => {
      const p = await shop();
      const attacker = await buildParticipant(api, p);
      const victim = uniq('u-');
      await browserEvent(api, p, { type: 'signup', userId: victim, code: attacker.code });
      const session = checkoutSession({ amount: 4900, metadata: { externalId: victim } });
      const reply = await deliverStripe(api, p.slug, stripeEvent('checkout.session.completed', session), { secret: WEBHOOK_SECRET });
      expect(reply.status, reply.text).toBe(200);
      const rewards = rewardsOf(await listAllRewards(api, p), attacker.externalId);
      expect(rewards.length).toBeGreaterThan(0);
      expect(rewards.every((reward) => reward.status === 'pending')).toBe(true);
    });
  });

  describe('4. email aliases do not beat the self-referral check', () => {
    it.each([['john.smith+ref@gmail.com'], ['johnsmith@gmail.com'], ['j.o.h.n.smith@googlemail.com'], ['John.Smith+x@GMail.com']])(
      '%s referred by john.smith@gmail.com is a self-referral',
      async (alias) => {
        const p = await shop();
        const referrer = await buildParticipant(api, p, { email: 'john.smith@gmail.com' });
        const answer = await conversion(api, p, {
          type: 'signup',
          eventId: uniq('evt-'),
          externalId: uniq('u-'),
          email: alias,
          referral: { code: referrer.code },
        });
        expect(answer.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
      },
    );

    it('a +tag on any domain is the same person; dots outside Gmail are not dropped', async () => {
      const p = await shop();
      const referrer = await buildParticipant(api, p, { email: 'pat.doe@example.com' });
      const tagged = await conversion(api, p, {
        type: 'signup',
        eventId: uniq('evt-'),
        externalId: uniq('u-'),
        email: 'pat.doe+friend@example.com',
        referral: { code: referrer.code },
      });
      expect(tagged.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
      const other = await conversion(api, p, {
        type: 'signup',
        eventId: uniq('evt-'),
        externalId: uniq('u-'),
        email: 'patdoe@example.com',
        referral: { code: referrer.code },
      });
      expect(other.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });
      // The email is stored as given.
      expect((await db('participants').where({ program_id: p.id, email: 'pat.doe+friend@example.com' })).length).toBe(1);
    });
  });

  describe('5. self-referral by visitor id', () => {
    it('a referrer later seen converting with the visitor id of a customer they referred: that referral is a self-referral, its rewards held', async () => {
      const p = await shop();
      const referrer = await buildParticipant(api, p);
      const visitor = newVid();
      expectOk(await api.post('/v1/clicks', { key: p.publishable, code: referrer.code, vid: visitor }), 202);
      const sock = uniq('sock-');
      const signup = await conversion(api, p, { type: 'signup', eventId: uniq('evt-'), externalId: sock, referral: { vid: visitor } });
      expect(signup.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });

      // The referrer buys from that same browser: the visitor id is theirs.
      await browserEvent(api, p, {
        type: 'purchase',
        userId: referrer.externalId,
        vid: visitor,
        order: { id: uniq('order-'), amount: 100, currency: 'USD' },
      });
      const referral = (await referrals(api, p, 'limit=500')).data.find((row) => row.referred === sock);
      expect(referral).toMatchObject({ status: 'held', reason: 'self_referral' });
      const rewards = rewardsOf(await listAllRewards(api, p), referrer.externalId);
      expect(rewards.map((reward) => [reward.status, reward.needsReview])).toEqual([['pending', true]]);
      // (The purchase itself, from their own click, was refused as a self-referral too.)
      expect((await decisions(api, p, 'reason=self_referral')).filter((d) => d.outcome === 'held')).toEqual([
        expect.objectContaining({ subject: 'attribution', participant: sock, referrer: referrer.externalId }),
      ]);

      // From then on, that visitor id cannot be referred by them at all.
      const next = await conversion(api, p, {
        type: 'signup',
        eventId: uniq('evt-'),
        externalId: uniq('u-'),
        referral: { code: referrer.code, vid: visitor },
      });
      expect(next.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
    });

    it('the visitor id the referrer was referred with counts as theirs', async () => {
      const p = await shop();
      const first = await buildParticipant(api, p);
      const visitor = newVid();
      const referrer = uniq('r-');
      await conversion(api, p, {
        type: 'signup',
        eventId: uniq('evt-'),
        externalId: referrer,
        referral: { code: first.code, vid: visitor },
      });
      const code = (await participant(api, p, referrer)).code as string;
      const answer = await conversion(api, p, {
        type: 'signup',
        eventId: uniq('evt-'),
        externalId: uniq('u-'),
        referral: { code, vid: visitor },
      });
      expect(answer.attribution).toEqual({ status: 'rejected', reason: 'self_referral' });
    });
  });

  describe('6. one identity behind several new customers is held as duplicate_identity', () => {
    it('one normalized email on several new customers', async () => {
      const p = await shop();
      const referrer = await buildParticipant(api, p);
      const emails = ['amy.lee@gmail.com', 'amylee@gmail.com', 'amy.lee+2@googlemail.com', 'AMY.LEE+3@gmail.com'];
      const answers = [];
      for (const email of emails) {
        answers.push(
          await conversion(api, p, {
            type: 'signup',
            eventId: uniq('evt-'),
            externalId: uniq('u-'),
            email,
            referral: { code: referrer.code },
          }),
        );
      }
      expect(answers.map((answer) => [answer.attribution.status, answer.attribution.held ?? false, answer.attribution.reason])).toEqual([
        ['attributed', false, undefined],
        ['attributed', true, 'duplicate_identity'],
        ['attributed', true, 'duplicate_identity'],
        ['attributed', true, 'duplicate_identity'],
      ]);
      const rewards = rewardsOf(await listAllRewards(api, p), referrer.externalId);
      expect(rewards.filter((reward) => reward.status === 'approved')).toHaveLength(1);
      expect(await decisions(api, p, 'reason=duplicate_identity')).toHaveLength(3);
    });

    it('one visitor id producing several attributed customers', async () => {
      const p = await shop();
      const referrer = await buildParticipant(api, p);
      const visitor = newVid();
      const answers = [];
      for (let i = 0; i < 3; i++) {
        answers.push(
          await conversion(api, p, {
            type: 'signup',
            eventId: uniq('evt-'),
            externalId: uniq('u-'),
            referral: { code: referrer.code, vid: visitor },
          }),
        );
      }
      expect(answers.map((answer) => answer.attribution.reason ?? null)).toEqual([null, 'duplicate_identity', 'duplicate_identity']);
      expect(answers.slice(1).every((answer) => answer.attribution.held)).toBe(true);
    });
  });
});
