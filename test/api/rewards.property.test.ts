/**
 * Property: whatever happens to a program — signups and purchases from the server
 * and the browser, partial and full refunds (and their retries), approve/revoke/pay,
 * the release job — the ledger stays consistent:
 *  - each participant's entries (GET /v1/rewards, every page) add up to the balances
 *    GET /v1/participants/:id reports;
 *  - every reward belongs to an attributed conversion (rewards → referrals in the db);
 *  - refunding every purchase in full nets each purchase reward (grant plus the entries
 *    that reverse it, revoked ones left out) to exactly zero.
 * Each run is a fresh program driven through the real app.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { releaseDueRewards } from '../../collector/src/domain/rewards.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture, vidFor } from '../helpers/factories.ts';
import { balancesOf, browserEvent, expectOk, listAllRewards, sumLedger, transition } from '../helpers/steps.ts';
import type { RewardResponse } from '../../shared/responses.ts';

const RULES = [
  { id: 's-both', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
  { id: 'p-pct', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 15 } },
  { id: 'p-held', on: 'purchase', to: 'referee', reward: { kind: 'credit', percent: 7 }, holdDays: 10 },
  {
    id: 'p-first',
    on: 'purchase',
    to: 'referrer',
    reward: { kind: 'cash', amount: 300, currency: 'USD' },
    when: { firstPurchaseOnly: true, minAmount: 1000 },
  },
  { id: 'p-cap', on: 'purchase', to: 'both', reward: { kind: 'cash', percent: 3 }, cap: { perReferrer: 2 } },
];
const PURCHASE_RULES = new Set(['p-pct', 'p-held', 'p-first', 'p-cap']);
const REFERRERS = ['alice', 'bob'] as const;
const CUSTOMERS = ['c0', 'c1', 'c2'] as const;
/** Runs of the property: 30, or FC_RUNS to search longer; FC_SEED (and FC_PATH) replay a reported counterexample. */
const NUM_RUNS = Number(process.env.FC_RUNS ?? 30);
const TIMEOUT_MS = Math.max(180_000, NUM_RUNS * 4_000);

const FROM: Record<string, string[]> = { approve: ['pending'], pay: ['approved'], revoke: ['pending', 'approved'] };
const TO: Record<string, string> = { approve: 'approved', pay: 'paid', revoke: 'revoked' };

interface Model {
  orders: Map<string, { amount: number; currency: string; refunded: number }>;
  refunds: Array<{ body: Record<string, unknown>; answer: unknown }>;
  seq: number;
}

interface Real {
  api: TestApp;
  p: ProgramFixture;
  codes: Record<string, string>;
}

type Cmd = fc.AsyncCommand<Model, Real>;

class Signup implements Cmd {
  constructor(
    readonly customer: string,
    readonly referrer: string | null,
    readonly browser: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { api, p, codes }: Real) {
    const code = this.referrer ? codes[this.referrer] : undefined;
    const eventId = `su-${this.customer}`;
    if (this.browser) {
      await browserEvent(api, p, { type: 'signup', eventId, userId: this.customer, vid: vidFor(this.customer), ...(code ? { code } : {}) });
    } else {
      const body = { type: 'signup', eventId, externalId: this.customer, ...(code ? { referral: { code } } : {}) };
      expectOk(await api.post('/v1/conversions', body, { auth: p.secret }));
    }
  }
  toString = () => `Signup(${this.customer}, ${this.referrer}, ${this.browser ? 'browser' : 'server'})`;
}

class Purchase implements Cmd {
  constructor(
    readonly customer: string,
    readonly slot: number,
    readonly amount: number,
    readonly currency: string,
    readonly referrer: string | null,
    readonly browser: boolean,
  ) {}
  check = () => true;
  async run(m: Model, { api, p, codes }: Real) {
    const orderId = `o-${this.customer}-${this.slot}`;
    // A second report of an order (a retry, or the server confirming the browser) carries the same order.
    const order = m.orders.get(orderId) ?? { amount: this.amount, currency: this.currency, refunded: 0 };
    m.orders.set(orderId, order);
    const code = this.referrer ? codes[this.referrer] : undefined;
    if (this.browser) {
      await browserEvent(api, p, {
        type: 'purchase',
        eventId: `evt-${m.seq++}`,
        userId: this.customer,
        vid: vidFor(this.customer),
        ...(code ? { code } : {}),
        order: { id: orderId, amount: order.amount, currency: order.currency },
      });
    } else {
      const body = {
        type: 'purchase',
        eventId: orderId,
        externalId: this.customer,
        amount: order.amount,
        currency: order.currency,
        ...(code ? { referral: { code } } : {}),
      };
      const answer = expectOk(await api.post('/v1/conversions', body, { auth: p.secret }));
      expect(answer.conversion).toMatchObject({ eventId: orderId, amount: order.amount, currency: order.currency, verified: true });
    }
  }
  toString = () =>
    `Purchase(${this.customer}#${this.slot}, ${this.amount} ${this.currency}, ${this.referrer}, ${this.browser ? 'browser' : 'server'})`;
}

class Refund implements Cmd {
  /** `share` null: refund the rest (no amount); else this share of what is left (at least 1). */
  constructor(
    readonly pick: number,
    readonly share: number | null,
  ) {}
  check = (m: Readonly<Model>) => m.orders.size > 0;
  async run(m: Model, { api, p }: Real) {
    const orderIds = [...m.orders.keys()];
    const orderId = orderIds[this.pick % orderIds.length]!;
    const order = m.orders.get(orderId)!;
    const left = order.amount - order.refunded;
    const amount = this.share === null ? undefined : Math.max(1, Math.floor(left * this.share));
    const body = { eventId: `rf-${m.seq++}`, purchaseEventId: orderId, ...(amount === undefined ? {} : { amount }) };
    const reply = await api.post('/v1/refunds', body, { auth: p.secret });
    const wanted = amount ?? left;
    if (wanted < 1 || wanted > left) {
      expect(reply.status, reply.text).toBe(422);
      expect(reply.body.error.code).toBe('refund_exceeds_purchase');
      return;
    }
    const answer = expectOk(reply);
    order.refunded += wanted;
    expect(answer.refund).toMatchObject({
      purchaseEventId: orderId,
      amount: wanted,
      refundedTotal: order.refunded,
      currency: order.currency,
    });
    m.refunds.push({ body, answer });
  }
  toString = () => `Refund(#${this.pick}, ${this.share === null ? 'rest' : this.share.toFixed(2)})`;
}

class RetryRefund implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.refunds.length > 0;
  async run(m: Model, { api, p }: Real) {
    const refund = m.refunds[this.pick % m.refunds.length]!;
    expect(expectOk(await api.post('/v1/refunds', refund.body, { auth: p.secret }))).toEqual(refund.answer);
  }
  toString = () => `RetryRefund(#${this.pick})`;
}

class Transition implements Cmd {
  constructor(
    readonly action: 'approve' | 'revoke' | 'pay',
    readonly pick: number,
    readonly reason: string | undefined,
  ) {}
  check = () => true;
  async run(_m: Model, { api, p }: Real) {
    const before = await listAllRewards(api, p);
    if (!before.length) return;
    const reward = before[this.pick % before.length]!;
    let reply = await transition(api, p, reward.id, this.action, this.reason);
    if (this.action === 'approve' && reward.status === 'pending' && !reward.reverses && Date.parse(reward.availableAt) > Date.now()) {
      // Before its hold ends, an approval takes force and a reason.
      expect(reply.status, reply.text).toBe(409);
      expect(reply.body.error.code).toBe('hold_not_over');
      reply = await api.post(`/v1/rewards/${reward.id}/approve`, { force: true, reason: this.reason ?? 'early' }, { auth: p.secret });
    }
    const grant = reward.reverses ? before.find((r) => r.id === reward.reverses) : undefined;
    if (reward.reverses && grant?.status !== 'paid') {
      // An adjustment of an unpaid reward moves only with its reward.
      expect(reply.status, reply.text).toBe(409);
      return;
    }
    if (!FROM[this.action]!.includes(reward.status)) {
      expect(reply.status, reply.text).toBe(409);
      expect(reply.body.error.code).toBe('invalid_transition');
      return;
    }
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body.reward).toMatchObject({ id: reward.id, status: TO[this.action] });
    if (this.action === 'approve') expect(reply.body.reward.needsReview).toBe(false);
    // Its adjustments in the same state moved with it; nothing else changed.
    const after = new Map((await listAllRewards(api, p)).map((r) => [r.id, r]));
    for (const entry of before) {
      const moved = entry.id === reward.id || (entry.reverses === reward.id && entry.status === reward.status);
      expect(after.get(entry.id)?.status, `${entry.id} (${entry.rule} ${entry.amount})`).toBe(moved ? TO[this.action] : entry.status);
    }
  }
  toString = () => `Transition(${this.action}, #${this.pick}${this.reason ? `, "${this.reason}"` : ''})`;
}

class Release implements Cmd {
  check = () => true;
  async run(_m: Model, { api, p }: Real) {
    await releaseHolds(p);
    for (const reward of await listAllRewards(api, p, { status: 'pending' })) {
      expect(reward.needsReview, `${reward.id} still pending after release`).toBe(true);
    }
  }
  toString = () => 'Release()';
}

/** Ends every hold of the program and runs the release job (set up per database below). */
let releaseHolds: (p: ProgramFixture) => Promise<void> = async () => {};

const customer = fc.constantFrom(...CUSTOMERS);
const referrer = fc.option(fc.constantFrom(...REFERRERS), { nil: null, freq: 4 });
const commands = fc.commands(
  [
    fc.tuple(customer, referrer, fc.boolean()).map(([c, r, b]) => new Signup(c, r, b)),
    fc
      .tuple(
        customer,
        fc.integer({ min: 0, max: 1 }),
        fc.integer({ min: 1, max: 50_000 }),
        fc.constantFrom('USD', 'EUR'),
        referrer,
        fc.boolean(),
      )
      .map(([c, slot, amount, currency, r, b]) => new Purchase(c, slot, amount, currency, r, b)),
    fc
      .tuple(fc.nat(), fc.option(fc.double({ min: 0.01, max: 1, noNaN: true }), { nil: null }))
      .map(([pick, share]) => new Refund(pick, share)),
    fc.nat().map((pick) => new RetryRefund(pick)),
    fc
      .tuple(
        fc.constantFrom('approve' as const, 'revoke' as const, 'pay' as const),
        fc.nat(),
        fc.option(fc.constantFrom('ops check', 'fraud', 'payout'), { nil: undefined }),
      )
      .map(([action, pick, reason]) => new Transition(action, pick, reason)),
    fc.constant(new Release()),
  ],
  { maxCommands: 20, size: 'medium' },
);

describe.each(DATABASES)('rewards ledger properties (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;

  useTestApp(kind, (suite) => ({ testDb: t, api } = suite));
  beforeAll(() => {
    releaseHolds = async (p) => {
      await t
        .db('rewards')
        .where({ program_id: p.id, status: 'pending' })
        .update({ available_at: new Date(Date.now() - 1000) });
      await releaseDueRewards(t.db);
    };
  });

  /** Rewards that do not belong to an attributed conversion of their program (should be none). */
  async function orphans(programId: string) {
    const rows = (await t
      .db('rewards as w')
      .leftJoin('referrals as r', 'r.id', 'w.referral_id')
      .leftJoin('conversions as c', 'c.id', 'w.conversion_id')
      .leftJoin('conversions as g', 'g.id', 'c.refund_of')
      .where('w.program_id', programId)
      .select(
        'w.id',
        'w.rule_id',
        'w.reverses',
        'w.beneficiary_id',
        'w.status',
        'r.id as referral_id',
        'r.program_id as referral_program',
        'r.referrer_id',
        'r.referred_id',
        'r.created_at as referral_at',
        'c.type',
        'c.program_id as conversion_program',
        'c.participant_id',
        'c.created_at as conversion_at',
        'g.participant_id as refunded_participant',
      )) as Array<Record<string, any>>;
    const overrides = (await t
      .db('decisions as d')
      .join('referrals as r', 'r.referred_id', 'd.participant_id')
      .where({ 'd.program_id': programId, 'd.reason': 'server_override' })
      .select('r.id', t.db.raw(`d.details->>'replaced' as replaced`))) as Array<{ id: string; replaced: string }>;
    const replaced = new Set(overrides.map((row) => `${row.id}|${row.replaced}`));
    return rows.filter((row) => {
      const attributed = row.referral_id && row.referral_program === programId && row.conversion_program === programId;
      // A referrer the server overruled (decision server_override) keeps their revoked rewards on that referral.
      const overruled = row.status === 'revoked' && replaced.has(`${row.referral_id}|${row.beneficiary_id}`);
      const beneficiary = row.beneficiary_id === row.referrer_id || row.beneficiary_id === row.referred_id || overruled;
      const conversion = row.reverses
        ? row.type === 'refund' && row.refunded_participant === row.referred_id && row.participant_id === row.referred_id
        : row.type === (PURCHASE_RULES.has(row.rule_id) ? 'purchase' : 'signup') &&
          row.participant_id === row.referred_id &&
          row.conversion_at.getTime() >= row.referral_at.getTime();
      return !(attributed && beneficiary && conversion);
    });
  }

  it('ledger sums equal balances, every reward is attributed, full refunds net purchase rewards to zero', {
    timeout: TIMEOUT_MS,
  }, async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        runs++;
        const p = await buildProgram(api, { settings: { rewardRules: RULES } });
        const codes: Record<string, string> = {};
        for (const name of REFERRERS) codes[name] = (await buildParticipant(api, p, { externalId: name })).code;
        const model: Model = { orders: new Map(), refunds: [], seq: 0 };
        await fc.asyncModelRun(() => ({ model, real: { api, p, codes } }), cmds);

        // 1. Each participant's ledger, read page by page, adds up to the reported balances.
        const ledger = await listAllRewards(api, p);
        const people = [...new Set([...REFERRERS, ...ledger.map((r) => r.participant)])];
        const seen = new Set<string>();
        for (const person of people) {
          const own = await listAllRewards(api, p, { participant: person }, 10);
          for (const r of own) {
            expect(r.participant).toBe(person);
            seen.add(r.id);
          }
          expect(await balancesOf(api, p, person), person).toEqual(sumLedger(own));
        }
        expect([...seen].sort()).toEqual(ledger.map((r) => r.id).sort());

        // 2. No reward without an attributed conversion.
        expect(await orphans(p.id)).toEqual([]);

        // 3. Refund every purchase in full: every purchase reward nets to zero.
        for (const [orderId, order] of model.orders) {
          const reply = await api.post('/v1/refunds', { eventId: `final-${orderId}`, purchaseEventId: orderId }, { auth: p.secret });
          if (order.refunded < order.amount) expect(reply.status, reply.text).toBe(200);
          else expect(reply.status, reply.text).toBe(422);
        }
        const final = await listAllRewards(api, p);
        const netOf = (grant: RewardResponse) =>
          final
            .filter((r) => (r.id === grant.id || r.reverses === grant.id) && r.status !== 'revoked')
            .reduce((sum, r) => sum + r.amount, 0);
        for (const grant of final.filter((r) => !r.reverses && PURCHASE_RULES.has(r.rule))) {
          expect(netOf(grant), `${grant.rule} ${grant.participant} ${grant.amount} ${grant.status} on ${grant.eventId}`).toBe(0);
        }
        // Every entry reverses a purchase reward of the same beneficiary, rule and currency.
        for (const entry of final.filter((r) => r.reverses)) {
          const grant = final.find((r) => r.id === entry.reverses);
          expect(grant && PURCHASE_RULES.has(grant.rule)).toBe(true);
          expect([entry.participant, entry.rule, entry.currency]).toEqual([grant!.participant, grant!.rule, grant!.currency]);
          expect(entry.amount).toBeLessThan(0);
        }
        expect(await orphans(p.id)).toEqual([]);
      }),
      {
        numRuns: NUM_RUNS,
        interruptAfterTimeLimit: TIMEOUT_MS / 3,
        ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true } : {}),
        examples: [
          // A browser purchase, partly refunded, then confirmed by the server, then refunded in full.
          [[new Purchase('c0', 0, 10_001, 'USD', 'alice', true), new Refund(0, 0.33), new Purchase('c0', 0, 10_001, 'USD', null, false)]],
          // A signup, then a purchase that makes the referral, then the server confirms the
          // signup: the referral came after the signup, so the signup earns nothing (found by CI).
          [[new Signup('c1', null, true), new Purchase('c1', 0, 1, 'USD', 'alice', false), new Signup('c1', null, false), new Release()]],
          // A browser purchase's reward paid, then the server names another referrer: the referral
          // stays with the paid one, unconfirmed (found by CI: it moved, leaving the paid reward orphaned).
          [
            [
              new Purchase('c2', 0, 1, 'USD', 'alice', true),
              new Transition('approve', 1092190535, undefined),
              new Transition('pay', 229817235, 'ops check'),
              new Signup('c2', 'bob', false),
              new Signup('c1', 'alice', false),
            ],
          ],
          // A browser signup with no referrer, a browser purchase that makes the referral, then the
          // server names another referrer for the signup (found by CI).
          // A browser purchase refunded in full, then confirmed by the server with a code: the
          // referral is made, the purchase earns nothing (found by CI, seed 21969099).
          [[new Purchase('c0', 1, 7, 'USD', null, true), new Refund(0, null), new Purchase('c0', 1, 1, 'USD', 'alice', false)]],
          [[new Purchase('c1', 0, 10_001, 'USD', null, true), new Refund(0, 0.33), new Purchase('c1', 0, 1, 'USD', 'bob', false)]],
          [[new Signup('c0', null, true), new Signup('c0', 'bob', false)]],
          // A browser purchase naming bob refunded in full, then the server's purchase names
          // alice and moves the referral: the refunded order earns alice nothing (found by CI,
          // seed -1563533300).
          [
            [
              new Purchase('c1', 0, 7, 'USD', 'bob', true),
              new Refund(0, null),
              new Purchase('c1', 0, 1, 'USD', 'alice', false),
              new Signup('c0', null, false),
            ],
          ],
          [[new Signup('c0', null, true), new Purchase('c0', 0, 1, 'USD', 'alice', true), new Signup('c0', 'bob', false)]],
          // A browser purchase naming alice partly refunded, then the server confirms it naming
          // bob: the grants it no longer earns are revoked, and the refund's adjustments of them
          // with them (found by CI, seed -551467840: the referee's -1 stayed pending).
          [
            [
              new Purchase('c0', 1, 167, 'USD', 'alice', true),
              new Refund(0, 0.204),
              new Purchase('c0', 0, 470, 'EUR', null, false),
              new Purchase('c2', 1, 316, 'EUR', 'bob', false),
              new Purchase('c0', 1, 43_891, 'USD', 'bob', false),
              new Release(),
            ],
          ],
        ],
      },
    );
    expect(runs).toBeGreaterThanOrEqual(NUM_RUNS);
  });
});
