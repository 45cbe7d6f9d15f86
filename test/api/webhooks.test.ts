/**
 * Webhooks out, on every database: referral.created, reward.created, reward.approved,
 * reward.revoked (and reward.paid) are written to the outbox with the change they
 * announce and delivered at least once by deliverDueWebhooks, with exponential
 * backoff, to a real local receiver that fails the first two attempts of each. Every
 * delivery is signed (verifyWebhook with the program's webhookSecret) and carries its
 * id, so the receiver can drop duplicates.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseDueRewards } from '../../collector/src/domain/rewards.ts';
import { deliverDueWebhooks, signWebhook, verifyWebhook } from '../../collector/src/domain/webhooks.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture, vidFor } from '../helpers/factories.ts';
import {
  browserEvent,
  deliveries,
  expectError,
  expectOk,
  listAllRewards,
  serverPurchase,
  serverSignup,
  transition,
} from '../helpers/steps.ts';
import { makeDue } from '../helpers/rows.ts';

interface Received {
  id: string | undefined;
  signature: string | undefined;
  headers: IncomingHttpHeaders;
  raw: string;
  body: { id: string; type: string; createdAt: string; data: any };
  at: number;
  answered: number;
}

/** A webhook receiver on 127.0.0.1 that answers 500 to the first `failures` attempts of each delivery id. */
async function startReceiver(failures = 2) {
  const received: Received[] = [];
  const attempts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const id = req.headers['referral-webhook-id'] as string | undefined;
      const n = (attempts.get(id ?? '') ?? 0) + 1;
      attempts.set(id ?? '', n);
      const answered = n <= failures ? 500 : 200;
      received.push({
        id,
        signature: req.headers['referral-signature'] as string | undefined,
        headers: req.headers,
        raw,
        body: JSON.parse(raw),
        at: Date.now(),
        answered,
      });
      res.writeHead(answered, { 'content-type': 'text/plain' }).end(answered === 200 ? 'ok' : 'try again');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return {
    url,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The receivers here are on 127.0.0.1, which only WEBHOOK_ALLOW_PRIVATE=1 allows (in the app and in delivery). */
const LOCAL = { allowPrivate: true };

describe.each(DATABASES)('webhooks (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  useTestApp(kind, (suite) => ({ testDb: t, api } = suite), { env: { WEBHOOK_ALLOW_PRIVATE: '1' } });
  beforeAll(async () => {
    receiver = await startReceiver(2);
  });
  afterAll(async () => {
    await receiver?.close();
  });

  /** Skips the backoff wait: the program's pending deliveries become due now. */
  const skipBackoff = (p: ProgramFixture) =>
    t.db('webhook_outbox').where({ program_id: p.id, status: 'pending' }).update({ next_attempt_at: t.db.fn.now() });

  it('delivers every event at least once, signed, retrying with exponential backoff', async () => {
    const p = await buildProgram(api, {
      settings: {
        rewardRules: [
          { id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
          { id: 'sale', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
          { id: 'held', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 50, currency: 'USD' }, holdDays: 3 },
        ],
      },
    });
    const quiet = await buildProgram(api, {
      settings: { rewardRules: [{ id: 'signup', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 100, currency: 'USD' } }] },
    });

    // Subscribe, then read the signing secret.
    const patched = expectOk(await api.patch('/v1/program', { settings: { webhookUrl: receiver.url } }, { auth: p.secret }));
    expect(patched.program.settings.webhookUrl).toBe(receiver.url);
    expectError(
      await api.patch('/v1/program', { settings: { webhookUrl: 'ftp://example.com/x' } }, { auth: p.secret }),
      422,
      'validation_failed',
    );
    const secret = expectOk(await api.get('/v1/program', { auth: p.secret })).program.webhookSecret as string;
    const otherSecret = expectOk(await api.get('/v1/program', { auth: quiet.secret })).program.webhookSecret as string;
    expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(otherSecret).not.toBe(secret);

    // What happens, and what each event should announce.
    const expected: Array<[string, string]> = [];
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    const signup = await serverSignup(api, p, 'bob', alice.code);
    expected.push(['referral.created', 'bob'], ...signup.rewards.map((r) => ['reward.created', r.id] as [string, string]));

    await browserEvent(api, p, {
      type: 'purchase',
      eventId: 'evt-1',
      userId: 'bob',
      vid: vidFor('bob'),
      order: { id: 'order-1', amount: 5000, currency: 'USD' },
    });
    const browserRewards = (await listAllRewards(api, p)).filter((r) => r.eventId === 'order-1');
    expect(browserRewards.map((r) => r.status)).toEqual(['pending', 'pending']);
    expected.push(...browserRewards.map((r) => ['reward.created', r.id] as [string, string]));
    const sale = browserRewards.find((r) => r.rule === 'sale')!;
    const held = browserRewards.find((r) => r.rule === 'held')!;

    await serverPurchase(api, p, 'bob', 'order-1', 5000); // confirms: the sale is approved, the held one waits
    expected.push(['reward.approved', sale.id]);
    await makeDue(t.db, [held.id]);
    await releaseDueRewards(t.db);
    expected.push(['reward.approved', held.id]);
    expectOk(await transition(api, p, sale.id, 'pay', 'payout 1'));
    expected.push(['reward.paid', sale.id]);

    const second = await serverPurchase(api, p, 'bob', 'order-2', 3000);
    expected.push(...second.rewards.map((r) => ['reward.created', r.id] as [string, string]));
    expectOk(await api.post('/v1/refunds', { eventId: 'refund-2', purchaseEventId: 'order-2' }, { auth: p.secret }));
    expected.push(...second.rewards.map((r) => ['reward.revoked', r.id] as [string, string]));

    // A program without a webhookUrl queues nothing.
    const carol = await buildParticipant(api, quiet, { externalId: 'carol' });
    await serverSignup(api, quiet, 'dave', carol.code);
    expect(Number((await t.db('webhook_outbox').where({ program_id: quiet.id }).count({ n: '*' }))[0]?.n)).toBe(0);
    expect(await deliveries(api, quiet)).toEqual([]);

    const queued = await deliveries(api, p);
    expect(queued).toHaveLength(expected.length);
    for (const d of queued) expect(d).toMatchObject({ status: 'pending', attempts: 0, lastStatus: null, deliveredAt: null });

    // Pass 1: every attempt fails; the next is about 5 s away (±20 %), and nothing is due before.
    const firstPass = Date.now();
    expect(await deliverDueWebhooks(t.db, LOCAL)).toBe(expected.length);
    expect(receiver.received).toHaveLength(expected.length);
    for (const d of await deliveries(api, p)) {
      expect(d).toMatchObject({ status: 'pending', attempts: 1, lastStatus: 500, lastError: 'HTTP 500', deliveredAt: null });
      const wait = Date.parse(d.nextAttemptAt!) - firstPass;
      expect(wait).toBeGreaterThan(3500);
      expect(wait).toBeLessThan(6000 + (Date.now() - firstPass));
    }
    expect(await deliverDueWebhooks(t.db, LOCAL)).toBe(0);
    expect(receiver.received).toHaveLength(expected.length);

    // Pass 2: fails again; the wait doubles.
    await skipBackoff(p);
    const secondPass = Date.now();
    expect(await deliverDueWebhooks(t.db, LOCAL)).toBe(expected.length);
    for (const d of await deliveries(api, p)) {
      expect(d).toMatchObject({ status: 'pending', attempts: 2, lastStatus: 500 });
      const wait = Date.parse(d.nextAttemptAt!) - secondPass;
      expect(wait).toBeGreaterThan(7500);
      expect(wait).toBeLessThan(12_000 + (Date.now() - secondPass));
    }

    // Keep passing (skipping the waits) until nothing is pending.
    for (let pass = 0; pass < 5; pass++) {
      await skipBackoff(p);
      await deliverDueWebhooks(t.db, LOCAL);
      if ((await deliveries(api, p, 'status=pending')).length === 0) break;
    }
    const done = await deliveries(api, p);
    expect(done).toHaveLength(expected.length);
    for (const d of done) {
      expect(d).toMatchObject({ status: 'delivered', attempts: 3, lastStatus: 200, lastError: null, nextAttemptAt: null });
      expect(Date.parse(d.deliveredAt!)).toBeGreaterThanOrEqual(secondPass);
    }
    expect(await deliveries(api, p, 'status=delivered')).toHaveLength(expected.length);
    expect(await deliveries(api, p, 'status=failed')).toEqual([]);
    expect(await deliveries(api, quiet, 'status=delivered')).toEqual([]);

    // What the receiver saw: three attempts per delivery, all signed, identifiable as duplicates.
    const mine = receiver.received.filter((r) => done.some((d) => d.id === r.id));
    expect(mine).toHaveLength(expected.length * 3);
    const byId = new Map<string, Received[]>();
    for (const request of mine) {
      expect(request.id).toBe(request.body.id);
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(verifyWebhook(secret, request.raw, request.signature!)).toBe(true);
      expect(verifyWebhook(otherSecret, request.raw, request.signature!)).toBe(false);
      expect(verifyWebhook(secret, request.raw.replace('"type":"', '"type":"x'), request.signature!)).toBe(false);
      const stamp = Number(/t=(\d+)/.exec(request.signature!)?.[1]);
      expect(Math.abs(stamp - request.at / 1000)).toBeLessThan(5);
      byId.set(request.id!, [...(byId.get(request.id!) ?? []), request]);
    }
    expect([...byId.keys()].sort()).toEqual(done.map((d) => d.id).sort());
    for (const attempts of byId.values()) {
      expect(attempts.map((a) => a.answered)).toEqual([500, 500, 200]);
      // The same event each time: the receiver can drop the repeats by id.
      expect(new Set(attempts.map((a) => JSON.stringify(a.body))).size).toBe(1);
    }

    // After dropping duplicates, exactly the expected events arrived.
    const events = [...byId.values()].map((attempts) => attempts[0]!.body);
    const seen = events.map(
      (e) => [e.type, e.type === 'referral.created' ? e.data.referral.referred : e.data.reward.id] as [string, string],
    );
    const order = (rows: Array<[string, string]>) => [...rows].sort((a, b) => (a.join() < b.join() ? -1 : 1));
    expect(order(seen)).toEqual(order(expected));
    for (const type of ['referral.created', 'reward.created', 'reward.approved', 'reward.revoked'])
      expect(
        seen.some(([t]) => t === type),
        type,
      ).toBe(true);

    // Payloads carry the objects as the API shows them.
    const referral = events.find((e) => e.type === 'referral.created')!;
    expect(referral.data.referral).toMatchObject({
      referrer: 'alice',
      referred: 'bob',
      code: alice.code,
      status: 'attributed',
      verified: true,
    });
    const approvedSale = events.find((e) => e.type === 'reward.approved' && e.data.reward.id === sale.id)!;
    expect(approvedSale.data.reward).toMatchObject({
      participant: 'alice',
      rule: 'sale',
      amount: 500,
      currency: 'USD',
      status: 'approved',
      eventId: 'order-1',
    });
    for (const revoked of events.filter((e) => e.type === 'reward.revoked')) expect(revoked.data.reward.status).toBe('revoked');
    for (const created of events.filter((e) => e.type === 'reward.created')) {
      expect(Object.keys(created.data.reward)).toEqual(
        expect.arrayContaining(['id', 'participant', 'rule', 'kind', 'amount', 'currency', 'status', 'availableAt', 'eventId']),
      );
    }
    for (const event of events) expect(Number.isNaN(Date.parse(event.createdAt))).toBe(false);

    // Nothing more is sent once delivered.
    await t.db('webhook_outbox').where({ program_id: p.id }).update({ next_attempt_at: t.db.fn.now() });
    const before = receiver.received.length;
    await deliverDueWebhooks(t.db, LOCAL);
    expect(receiver.received.length).toBe(before);
  });

  it('records unreachable endpoints and gives up after the last attempt', async () => {
    const p = await buildProgram(api, { settings: { rewardRules: [], webhookUrl: 'http://127.0.0.1:1/unreachable' } });
    const alice = await buildParticipant(api, p, { externalId: 'alice' });
    await serverSignup(api, p, 'bob', alice.code);
    const [queued] = await deliveries(api, p);
    expect(queued).toMatchObject({ type: 'referral.created', status: 'pending', attempts: 0 });
    await deliverDueWebhooks(t.db, LOCAL);
    const failedOnce = (await deliveries(api, p))[0]!;
    expect(failedOnce).toMatchObject({ status: 'pending', attempts: 1, lastStatus: null });
    expect(failedOnce.lastError).toEqual(expect.any(String));
    expect(Date.parse(failedOnce.nextAttemptAt!)).toBeGreaterThan(Date.now() + 2000);
    // The last allowed attempt fails too: the delivery is marked failed and no longer retried.
    await t.db('webhook_outbox').where({ program_id: p.id }).update({ attempts: 11, next_attempt_at: t.db.fn.now() });
    await deliverDueWebhooks(t.db, LOCAL);
    const [failed] = await deliveries(api, p);
    expect(failed).toMatchObject({ status: 'failed', attempts: 12, nextAttemptAt: null, deliveredAt: null });
    expect(await deliveries(api, p, 'status=failed')).toHaveLength(1);
    await t.db('webhook_outbox').where({ program_id: p.id }).update({ next_attempt_at: t.db.fn.now() });
    await deliverDueWebhooks(t.db, LOCAL);
    expect((await deliveries(api, p))[0]).toMatchObject({ status: 'failed', attempts: 12 });
  });

  it('verifyWebhook accepts only a fresh signature of the exact body with the right secret', () => {
    const body = JSON.stringify({ id: 'x', type: 'reward.created', data: { n: 1 } });
    const now = Date.now();
    const stamp = Math.floor(now / 1000);
    const header = signWebhook('whsec_test', body, stamp);
    expect(verifyWebhook('whsec_test', body, header, 300, now)).toBe(true);
    expect(verifyWebhook('whsec_other', body, header, 300, now)).toBe(false);
    expect(verifyWebhook('whsec_test', `${body} `, header, 300, now)).toBe(false);
    expect(verifyWebhook('whsec_test', body, header, 300, now + 301_000)).toBe(false);
    expect(verifyWebhook('whsec_test', body, signWebhook('whsec_test', body, stamp - 400), 300, now)).toBe(false);
    expect(verifyWebhook('whsec_test', body, header.slice(0, -1) + (header.endsWith('0') ? '1' : '0'), 300, now)).toBe(false);
    for (const garbage of ['', 'nonsense', `t=${stamp}`, 'v1=abc', `t=abc,v1=${header.split('v1=')[1]}`, `t=${stamp},v1=zz`]) {
      expect(verifyWebhook('whsec_test', body, garbage, 300, now), garbage).toBe(false);
    }
  });
});
