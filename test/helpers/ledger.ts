/**
 * Shared steps for the rewards suites (rewards, refunds, rewards.property, webhooks):
 * conversions from the server and the browser, reading the ledger page by page,
 * balances, and moving time by backdating rows.
 */
import { expect } from 'vitest';
import type { Knex } from 'knex';
import type { Reply, TestApp } from './app.ts';
import type { ProgramFixture } from './factories.ts';

export interface Reward {
  id: string;
  participant: string;
  rule: string;
  kind: 'credit' | 'cash' | 'coupon';
  amount: number;
  currency: string | null;
  coupon?: string;
  status: 'pending' | 'approved' | 'paid' | 'revoked';
  availableAt: string;
  eventId: string;
  reverses?: string;
  needsReview: boolean;
  createdAt: string;
}

export type Balances = { pending: Record<string, number>; approved: Record<string, number>; paid: Record<string, number> };

export const DAY_MS = 86_400_000;

/** A vid the browser schema accepts (8–64 of [A-Za-z0-9_-]). */
export const vidFor = (name: string) =>
  `vid_${name}`
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .padEnd(8, '_')
    .slice(0, 64);

export function expectOk(reply: Reply, status = 200) {
  expect(reply.status, `${reply.status} ${reply.text}`).toBe(status);
  return reply.body;
}

export function expectError(reply: Reply, status: number, code: string) {
  expect(reply.status, reply.text).toBe(status);
  expect(reply.body?.error?.code, reply.text).toBe(code);
  expect(typeof reply.body.error.message).toBe('string');
}

/** A server (verified) signup; `code` attributes it to that code's owner. */
export async function serverSignup(
  api: TestApp,
  program: ProgramFixture,
  externalId: string,
  code?: string,
  eventId = `signup-${externalId}`,
) {
  const reply = await api.post(
    '/v1/conversions',
    { type: 'signup', eventId, externalId, ...(code ? { referral: { code } } : {}) },
    { auth: program.secret },
  );
  return expectOk(reply) as { conversion: any; attribution: any; rewards: Reward[] };
}

/** A server (verified) purchase. */
export async function serverPurchase(
  api: TestApp,
  program: ProgramFixture,
  externalId: string,
  eventId: string,
  amount: number,
  currency = 'USD',
  code?: string,
) {
  const reply = await api.post(
    '/v1/conversions',
    { type: 'purchase', eventId, externalId, amount, currency, ...(code ? { referral: { code } } : {}) },
    { auth: program.secret },
  );
  return expectOk(reply) as { conversion: any; attribution: any; rewards: Reward[] };
}

/** A browser (unverified) event through POST /v1/events with the publishable key. */
export async function browserEvent(
  api: TestApp,
  program: ProgramFixture,
  event: {
    type: 'signup' | 'purchase';
    eventId: string;
    userId: string;
    code?: string;
    order?: { id: string; amount: number; currency: string };
  },
  options: { textPlain?: boolean } = {},
) {
  const body = {
    key: program.publishable,
    type: event.type,
    eventId: event.eventId,
    vid: vidFor(event.userId),
    ...(event.code ? { code: event.code } : {}),
    user: { id: event.userId },
    ...(event.order ? { order: event.order } : {}),
  };
  const reply = options.textPlain
    ? await api.post('/v1/events', undefined, { raw: JSON.stringify(body), headers: { 'content-type': 'text/plain;charset=UTF-8' } })
    : await api.post('/v1/events', body);
  expectOk(reply, 202);
}

/** Every reward of the program matching the query, following nextCursor to the end. */
export async function listAllRewards(
  api: TestApp,
  program: ProgramFixture,
  query: Record<string, string> = {},
  limit = 500,
): Promise<Reward[]> {
  const all: Reward[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const params = new URLSearchParams({ ...query, limit: String(limit), ...(cursor ? { cursor } : {}) });
    const body = expectOk(await api.get(`/v1/rewards?${params}`, { auth: program.secret })) as {
      data: Reward[];
      nextCursor: string | null;
    };
    expect(body.data.length).toBeLessThanOrEqual(limit);
    all.push(...body.data);
    cursor = body.nextCursor;
    if (!cursor) return all;
    expect(body.data.length).toBe(limit);
  }
  throw new Error('listAllRewards: too many pages');
}

export async function balancesOf(api: TestApp, program: ProgramFixture, externalId: string): Promise<Balances> {
  return (expectOk(await api.get(`/v1/participants/${encodeURIComponent(externalId)}`, { auth: program.secret })) as { rewards: Balances })
    .rewards;
}

/** The balances a ledger adds up to: sums per status and currency (revoked and currency-less entries left out). */
export function sumLedger(rewards: Reward[]): Balances {
  const sums: Balances = { pending: {}, approved: {}, paid: {} };
  for (const reward of rewards) {
    if (reward.status === 'revoked' || !reward.currency) continue;
    const bucket = sums[reward.status];
    bucket[reward.currency] = (bucket[reward.currency] ?? 0) + reward.amount;
  }
  return sums;
}

export async function transition(api: TestApp, program: ProgramFixture, id: string, action: string, reason?: string) {
  return api.post(`/v1/rewards/${id}/${action}`, reason === undefined ? undefined : { reason }, { auth: program.secret });
}

/** The program's secret key id, as recorded in `reward_transitions.actor` (`key:<id>`). */
export async function secretKeyId(db: Knex, programId: string): Promise<string> {
  const row = (await db('api_keys').where({ program_id: programId, kind: 'secret' }).first('id')) as { id: string } | undefined;
  if (!row) throw new Error('no secret key');
  return row.id;
}

export async function transitionsOf(db: Knex, rewardId: string) {
  return (await db('reward_transitions')
    .where({ reward_id: rewardId })
    .orderBy('id')
    .select('from_status', 'to_status', 'actor', 'reason', 'created_at')) as Array<{
    from_status: string | null;
    to_status: string;
    actor: string;
    reason: string | null;
    created_at: Date;
  }>;
}

/** Moves a referral (by the referred participant's externalId) `days` into the past. */
export async function backdateReferral(db: Knex, programId: string, referredExternalId: string, days: number) {
  const referred = db('participants').select('id').where({ program_id: programId, external_id: referredExternalId });
  const count = await db('referrals')
    .where({ program_id: programId })
    .whereIn('referred_id', referred)
    .update({ created_at: db.raw(`created_at - make_interval(days => ?)`, [days]) });
  expect(count).toBe(1);
}

/** Makes the given rewards due now (their hold is over). */
export async function makeDue(db: Knex, rewardIds: string[]) {
  if (rewardIds.length)
    await db('rewards')
      .whereIn('id', rewardIds)
      .update({ available_at: new Date(Date.now() - 1000) });
}
