/**
 * Payouts: paying referrers in runs. A run holds one item per referrer and currency:
 * their approved cash rewards whose hold has ended, less the clawbacks not yet
 * recovered (negative entries, so a clawback after a payout is carried into the next
 * one). Items under the program's minimum wait for a later run; credit and coupon
 * rewards are never paid as cash. Rewards become `paid` (with the payout id) only when
 * their item is marked paid; a failed item frees them for the next run. A reward is
 * in at most one open item: a database constraint (see the payouts migration), and
 * concurrent runs skip the rows another run holds.
 */
import type { Knex } from 'knex';
import type { PayoutCreate, PayoutItemsUpdate, PayoutMethod } from '../../../shared/schemas.ts';
import { conflict, notFound, unprocessable } from '../errors.ts';
import type { Page, PayoutItemResponse, PayoutResponse } from '../../../shared/responses.ts';
import { isUniqueViolation } from '../storage/db.ts';
import { pageQuery, toPage } from '../storage/paging.ts';
import { payoutDetailsOf } from './payoutDetails.ts';
import type { ProgramRow } from './programs.ts';
import type { RewardRow } from './rewards.ts';
import { enqueueWebhook } from './webhooks.ts';

export interface PayoutRow {
  id: string;
  program_id: string;
  status: 'created' | 'paid' | 'failed';
  currency: string | null;
  actor: string;
  created_at: Date;
  updated_at: Date;
}

export interface PayoutItemRow {
  id: string;
  program_id: string;
  payout_id: string;
  participant_id: string;
  currency: string;
  amount: number;
  method: PayoutMethod;
  destination: { email?: string; stripeAccount?: string };
  status: 'pending' | 'paid' | 'failed';
  reference: string | null;
  transfer_id: string | null;
  failure: string | null;
  created_at: Date;
  updated_at: Date;
  /** Joined: the referrer's externalId, name and email. */
  participant: string;
  name: string | null;
  email: string | null;
  /** Joined: the rewards the item pays (released ones excluded). */
  rewards: string[];
}

/** A referrer and currency a run leaves out, and why. */
export interface Skipped {
  participant: string;
  currency: string;
  amount: number;
  reason: 'below_minimum' | 'nothing_to_pay' | 'no_payout_details' | 'erased';
}

interface Eligible {
  id: string;
  beneficiary_id: string;
  external_id: string;
  erased: boolean;
  currency: string;
  amount: number;
}

/**
 * The rewards a run may pay, oldest first. Locked for the run; rows another run (or a
 * transition) holds are skipped, so two runs at once never take the same reward.
 */
async function eligibleRewards(trx: Knex, programId: string, currency: string | undefined, lock: boolean): Promise<Eligible[]> {
  const query = trx('rewards as w')
    .join('participants as p', 'p.id', 'w.beneficiary_id')
    .where({ 'w.program_id': programId, 'w.status': 'approved', 'w.kind': 'cash' })
    .whereNotNull('w.currency')
    .where('w.available_at', '<=', trx.fn.now())
    .whereNotExists(trx('payout_item_rewards as x').whereRaw('x.reward_id = w.id').where('x.released', false))
    .orderBy('w.created_at')
    .orderBy('w.id')
    .select('w.id', 'w.beneficiary_id', 'p.external_id', trx.raw('p.erased_at is not null as erased'), 'w.currency', 'w.amount');
  if (currency) query.where('w.currency', currency);
  if (lock) query.forUpdate('w').skipLocked();
  return (await query) as Eligible[];
}

export interface PlannedItem {
  participantId: string;
  participant: string;
  currency: string;
  amount: number;
  method: PayoutMethod;
  destination: { email?: string; stripeAccount?: string };
  rewards: string[];
}

/** Groups the eligible rewards per referrer and currency and applies the run's rules. */
async function plan(trx: Knex, program: ProgramRow, rewards: Eligible[]): Promise<{ items: PlannedItem[]; skipped: Skipped[] }> {
  const groups = new Map<string, Eligible[]>();
  for (const reward of rewards) {
    const key = `${reward.beneficiary_id}|${reward.currency}`;
    groups.set(key, [...(groups.get(key) ?? []), reward]);
  }
  const items: PlannedItem[] = [];
  const skipped: Skipped[] = [];
  const settings = program.settings.payouts ?? {};
  for (const group of groups.values()) {
    const first = group[0] as Eligible;
    const amount = group.reduce((sum, reward) => sum + Number(reward.amount), 0);
    const skip = (reason: Skipped['reason']) => skipped.push({ participant: first.external_id, currency: first.currency, amount, reason });
    if (first.erased) skip('erased');
    else if (amount <= 0) skip('nothing_to_pay');
    else if (amount < (settings.minimum?.[first.currency] ?? 0)) skip('below_minimum');
    else {
      const details = await payoutDetailsOf(trx, first.beneficiary_id);
      const method: PayoutMethod = details?.method ?? settings.method ?? 'manual';
      const destination = {
        ...(details?.email ? { email: details.email } : {}),
        ...(details?.stripeAccount ? { stripeAccount: details.stripeAccount } : {}),
      };
      const reachable = method === 'manual' || (method === 'stripe_connect' ? destination.stripeAccount : destination.email);
      if (!reachable) skip('no_payout_details');
      else {
        items.push({
          participantId: first.beneficiary_id,
          participant: first.external_id,
          currency: first.currency,
          amount,
          method,
          destination,
          rewards: group.map((reward) => reward.id),
        });
      }
    }
  }
  return { items, skipped };
}

/**
 * POST /v1/payouts: a run (or, with dryRun, what a run would hold, writing nothing).
 * Nothing to pay is a 422 that says why each referrer was left out.
 */
export async function createPayout(db: Knex, program: ProgramRow, input: PayoutCreate, actor: string) {
  const currency = input.currency;
  if (input.dryRun) {
    const planned = await plan(db, program, await eligibleRewards(db, program.id, currency, false));
    return { dryRun: true as const, ...planned };
  }
  try {
    return await db.transaction(async (trx) => {
      const planned = await plan(trx, program, await eligibleRewards(trx, program.id, currency, true));
      if (!planned.items.length) {
        throw unprocessable('nothing_to_pay', 'No referrer has approved cash rewards at or above the minimum to pay now', {
          _: planned.skipped.length
            ? `left out: ${planned.skipped.map((s) => `${s.participant} ${s.currency} (${s.reason})`).join(', ')}`
            : 'nothing is due',
        });
      }
      const [payout] = (await trx('payouts')
        .insert({ program_id: program.id, currency: currency ?? null, actor })
        .returning('*')) as PayoutRow[];
      const run = payout as PayoutRow;
      for (const item of planned.items) {
        const [row] = (await trx('payout_items')
          .insert({
            program_id: program.id,
            payout_id: run.id,
            participant_id: item.participantId,
            currency: item.currency,
            amount: item.amount,
            method: item.method,
            destination: JSON.stringify(item.destination),
          })
          .returning('id')) as Array<{ id: string }>;
        await trx('payout_item_rewards').insert(
          item.rewards.map((rewardId) => ({ item_id: (row as { id: string }).id, reward_id: rewardId })),
        );
      }
      const presented = await presentPayout(trx, run);
      await enqueueWebhook(trx, program, 'payout.created', { payout: presented });
      return { dryRun: false as const, payout: presented, skipped: planned.skipped };
    });
  } catch (error) {
    // Another run took one of these rewards between our read and our write.
    if (isUniqueViolation(error, 'payout_item_rewards_one_open'))
      throw conflict('payout_in_progress', 'Another payout run took some of these rewards; try again');
    throw error;
  }
}

async function itemsOf(db: Knex, payoutIds: string[]): Promise<PayoutItemRow[]> {
  if (!payoutIds.length) return [];
  return (await db('payout_items as i')
    .join('participants as p', 'p.id', 'i.participant_id')
    .whereIn('i.payout_id', payoutIds)
    .orderBy('i.created_at')
    .orderBy('i.id')
    .select(
      'i.*',
      'p.external_id as participant',
      'p.name',
      'p.email',
      db.raw(
        `coalesce((select array_agg(x.reward_id order by x.reward_id) from payout_item_rewards x where x.item_id = i.id and not x.released), '{}') as rewards`,
      ),
    )) as PayoutItemRow[];
}

export function presentItem(item: PayoutItemRow): PayoutItemResponse {
  return {
    id: item.id,
    participant: item.participant,
    currency: item.currency,
    amount: Number(item.amount),
    method: item.method,
    destination: item.destination,
    rewards: item.rewards,
    status: item.status,
    reference: item.reference,
    transferId: item.transfer_id,
    failure: item.failure,
  };
}

export async function presentPayout(db: Knex, payout: PayoutRow): Promise<PayoutResponse> {
  const items = await itemsOf(db, [payout.id]);
  const totals: Record<string, number> = {};
  for (const item of items) if (item.status !== 'failed') totals[item.currency] = (totals[item.currency] ?? 0) + Number(item.amount);
  return {
    id: payout.id,
    status: payout.status,
    currency: payout.currency,
    totals,
    items: items.map(presentItem),
    createdAt: payout.created_at.toISOString(),
    updatedAt: payout.updated_at.toISOString(),
  };
}

/** GET /v1/payouts: newest first, keyset paged. */
export async function listPayouts(
  db: Knex,
  programId: string,
  query: { limit: number; cursor?: string | undefined },
): Promise<Page<PayoutResponse>> {
  const rows = (await pageQuery(
    db('payouts as o').where('o.program_id', programId).select('o.*'),
    'o',
    query.limit,
    query.cursor,
  )) as PayoutRow[];
  const page = toPage(rows, query.limit, (row) => row);
  return { data: await Promise.all(page.data.map((row) => presentPayout(db, row))), nextCursor: page.nextCursor };
}

export async function findPayout(db: Knex, programId: string, id: string): Promise<PayoutRow> {
  const row = (await db('payouts').where({ program_id: programId, id }).first()) as PayoutRow | undefined;
  if (!row) throw notFound('Payout');
  return row;
}

export async function payoutItems(db: Knex, payout: PayoutRow): Promise<PayoutItemRow[]> {
  return itemsOf(db, [payout.id]);
}

/** Locks the run and the chosen items (all when none are named); unknown item ids are a 404. */
async function lockItems(
  trx: Knex,
  programId: string,
  payoutId: string,
  ids: string[] | undefined,
): Promise<{ payout: PayoutRow; items: PayoutItemRow[] }> {
  const payout = (await trx('payouts').where({ program_id: programId, id: payoutId }).forUpdate().first()) as PayoutRow | undefined;
  if (!payout) throw notFound('Payout');
  const query = trx('payout_items').where({ payout_id: payoutId }).forUpdate();
  if (ids) query.whereIn('id', ids);
  const locked = (await query) as Array<{ id: string }>;
  if (ids && locked.length !== new Set(ids).size) throw notFound('Payout item');
  return { payout, items: await itemsOf(trx, [payoutId]).then((all) => all.filter((item) => locked.some((row) => row.id === item.id))) };
}

/** The run's status once its items settle: created while any is pending. */
async function settleStatus(trx: Knex, payout: PayoutRow): Promise<PayoutRow> {
  const statuses = ((await trx('payout_items').where({ payout_id: payout.id }).select('status')) as Array<{ status: string }>).map(
    (row) => row.status,
  );
  const status = statuses.includes('pending') ? 'created' : statuses.includes('paid') ? 'paid' : 'failed';
  const [row] = (await trx('payouts').where({ id: payout.id }).update({ status, updated_at: trx.fn.now() }).returning('*')) as PayoutRow[];
  return row as PayoutRow;
}

export type ItemChange = { paid: PayoutItemRow[] } | { failed: PayoutItemRow[] };

/**
 * POST /v1/payouts/:id/paid: the chosen pending items (all, when none are named) are
 * paid; their rewards become `paid` with the payout id. A reward revoked since the run
 * was made (a refund) was paid anyway: it gets a clawback for the next run. Items
 * already paid are left as they are (a retry changes nothing); failed ones are a 409.
 */
export async function markItemsPaid(
  db: Knex,
  program: ProgramRow,
  payoutId: string,
  input: PayoutItemsUpdate,
  actor: string,
  hooks: PayoutHooks = {},
) {
  return db.transaction(async (trx) => {
    const { payout, items } = await lockItems(trx, program.id, payoutId, input.items);
    const failed = items.find((item) => item.status === 'failed' && input.items);
    if (failed) throw conflict('item_failed', `Item ${failed.id} failed; its rewards go to the next run`);
    const paying = items.filter((item) => item.status === 'pending');
    for (const item of paying) {
      const reference = input.reference ?? item.reference ?? null;
      await trx('payout_items').where({ id: item.id }).update({ status: 'paid', reference, updated_at: trx.fn.now() });
      await payRewards(trx, program, payout.id, item, actor, reference);
      await hooks.onItemPaid?.(trx, program, { ...item, status: 'paid', reference });
    }
    const settled = await settleStatus(trx, payout);
    const presented = await presentPayout(trx, settled);
    if (paying.length && settled.status === 'paid' && payout.status !== 'paid')
      await enqueueWebhook(trx, program, 'payout.paid', { payout: presented });
    return presented;
  });
}

/**
 * The item's rewards become paid with the payout id. The item's amount was fixed when
 * the run was made (it is what the file paid): a reward moved back to review since is
 * paid all the same, and one revoked since (a refund) gets a clawback, recovered from
 * the referrer's next payout.
 */
async function payRewards(trx: Knex, program: ProgramRow, payoutId: string, item: PayoutItemRow, actor: string, reference: string | null) {
  const reason = `payout ${payoutId}${reference ? `: ${reference}` : ''}`;
  const rewards = (await trx('rewards').whereIn('id', item.rewards).orderBy('id').forUpdate().select('*')) as RewardRow[];
  for (const reward of rewards) {
    if (reward.status === 'approved' || reward.status === 'pending') {
      await trx('rewards')
        .where({ id: reward.id })
        .update({ status: 'paid', payout_id: payoutId, needs_review: false, updated_at: trx.fn.now() });
      await trx('reward_transitions').insert({
        program_id: program.id,
        reward_id: reward.id,
        from_status: reward.status,
        to_status: 'paid',
        actor,
        reason,
      });
    } else if (reward.status === 'revoked' && Number(reward.amount) > 0) {
      const [clawback] = (await trx('rewards')
        .insert({
          program_id: program.id,
          conversion_id: reward.conversion_id,
          rule_id: reward.rule_id,
          beneficiary_id: reward.beneficiary_id,
          referral_id: reward.referral_id,
          kind: reward.kind,
          amount: -Number(reward.amount),
          currency: reward.currency,
          percent: reward.percent,
          status: 'approved',
          needs_review: false,
          available_at: trx.fn.now(),
          reverses: reward.id,
        })
        .returning('id')) as Array<{ id: string }>;
      await trx('reward_transitions').insert({
        program_id: program.id,
        reward_id: (clawback as { id: string }).id,
        from_status: null,
        to_status: 'approved',
        actor,
        reason: `${reason} (paid after it was revoked)`,
      });
    }
  }
}

/**
 * POST /v1/payouts/:id/failed: the chosen pending items failed; their rewards are free
 * for the next run. Items already failed are left as they are; paid ones are a 409.
 */
export async function markItemsFailed(db: Knex, program: ProgramRow, payoutId: string, input: PayoutItemsUpdate & { reason?: string }) {
  return db.transaction(async (trx) => {
    const { payout, items } = await lockItems(trx, program.id, payoutId, input.items);
    const paid = items.find((item) => item.status === 'paid' && input.items);
    if (paid) throw conflict('item_paid', `Item ${paid.id} is paid; a payment that bounced later is a refund to record, not a failure`);
    for (const item of items.filter((row) => row.status === 'pending'))
      await failItem(trx, item.id, input.reason ?? input.reference ?? 'marked failed');
    return presentPayout(trx, await settleStatus(trx, payout));
  });
}

async function failItem(trx: Knex, itemId: string, failure: string): Promise<void> {
  await trx('payout_items')
    .where({ id: itemId })
    .update({ status: 'failed', failure: failure.slice(0, 500), updated_at: trx.fn.now() });
  await trx('payout_item_rewards').where({ item_id: itemId }).update({ released: true });
}

/** Side effects of paying an item that belong to other modules (emails). */
export interface PayoutHooks {
  onItemPaid?: (trx: Knex, program: ProgramRow, item: PayoutItemRow) => Promise<void>;
}
