/**
 * Rewards: an append-only ledger granted by the program's rules, in the same
 * transaction as the conversion. Entries move pending → approved → paid, or to
 * revoked; a refund adds negative entries (`reverses` names the grant).
 */
import type { Knex } from 'knex';
import type { Page, RewardResponse } from '../../../shared/responses.ts';
import type { RewardQuery, RewardRule } from '../../../shared/schemas.ts';
import type { RewardStatus } from '../../../shared/types.ts';
import { prepared } from '../storage/db.ts';
import { pageQuery, toPage } from '../storage/paging.ts';
import type { ReferralRow } from './attribution.ts';
import type { ConversionRow } from './conversions.ts';
import { recordDecision } from './decisions.ts';
import type { ProgramRow } from './programs.ts';
import { factsNeeded, type RuleFacts, rewardValue, ruleMiss } from './rules.ts';
import { enqueueWebhook, type WebhookType } from './webhooks.ts';
import { emailApprovedRewards } from './emails.ts';

export interface RewardRow {
  id: string;
  program_id: string;
  conversion_id: string;
  rule_id: string;
  beneficiary_id: string;
  referral_id: string | null;
  kind: 'credit' | 'cash' | 'coupon';
  amount: number;
  currency: string | null;
  coupon: string | null;
  percent: number | null;
  status: RewardStatus;
  needs_review: boolean;
  available_at: Date;
  reverses: string | null;
  created_at: Date;
  updated_at: Date;
  /** Joined: the beneficiary's externalId. */
  participant: string;
  /** Joined: the conversion's eventId. */
  event_id: string;
}

/** A reward as the API shows it (the name conversions.ts knows it by). */
export type RewardView = RewardResponse;

export function presentReward(row: RewardRow): RewardResponse {
  return {
    id: row.id,
    participant: row.participant,
    rule: row.rule_id,
    kind: row.kind,
    amount: row.amount,
    currency: row.currency,
    ...(row.coupon ? { coupon: row.coupon } : {}),
    status: row.status,
    availableAt: row.available_at.toISOString(),
    eventId: row.event_id,
    ...(row.reverses ? { reverses: row.reverses } : {}),
    needsReview: row.needs_review,
    createdAt: row.created_at.toISOString(),
  };
}

const DAY_MS = 86_400_000;

/** Rewards with the joined beneficiary externalId and conversion eventId. */
export function rewardQuery(db: Knex) {
  return db('rewards as w')
    .join('participants as p', 'p.id', 'w.beneficiary_id')
    .join('conversions as c', 'c.id', 'w.conversion_id')
    .select('w.*', 'p.external_id as participant', 'c.event_id');
}

/** GET /v1/rewards: the program's ledger, newest first, by status and beneficiary. */
export async function listRewards(db: Knex, programId: string, query: RewardQuery): Promise<Page<RewardResponse>> {
  const rows = rewardQuery(db).where('w.program_id', programId);
  if (query.status) rows.where('w.status', query.status);
  if (query.participant) rows.where('p.external_id', query.participant);
  return toPage((await pageQuery(rows, 'w', query.limit, query.cursor)) as RewardRow[], query.limit, presentReward);
}

async function loadRewards(trx: Knex, ids: string[]): Promise<RewardRow[]> {
  if (!ids.length) return [];
  return (await rewardQuery(trx).whereIn('w.id', ids).orderBy('w.created_at').orderBy('w.id')) as RewardRow[];
}

async function logTransition(
  trx: Knex,
  reward: { id: string; program_id: string },
  from: RewardStatus | null,
  to: RewardStatus,
  actor: string,
  reason?: string | null,
) {
  await trx('reward_transitions').insert({
    program_id: reward.program_id,
    reward_id: reward.id,
    from_status: from,
    to_status: to,
    actor,
    reason: reason ?? null,
  });
}

async function announce(trx: Knex, program: ProgramRow, type: WebhookType, rewards: RewardRow[]) {
  for (const reward of rewards) await enqueueWebhook(trx, program, type, { reward: presentReward(reward) });
}

/**
 * Does the rule apply to this conversion? (The cap is checked separately.) The rule
 * itself is `ruleMiss` (rules.ts); this reads the facts it needs, and only those: the
 * conversion's own first, then the customer's purchases and the referrer's referrals
 * if the rule looks at them and is still in the running.
 */
async function ruleApplies(trx: Knex, rule: RewardRule, conversion: ConversionRow, referral: ReferralRow): Promise<boolean> {
  const facts: RuleFacts = {
    type: conversion.type,
    amount: conversion.amount,
    currency: conversion.currency,
    sinceReferralMs: conversion.created_at.getTime() - referral.created_at.getTime(),
  };
  if (ruleMiss(rule, facts)) return false;
  const needed = factsNeeded(rule);
  if (!needed.purchaseHistory && !needed.referralNumber) return true;
  if (needed.purchaseHistory) facts.firstPurchase = !(await hasEarlierPurchase(trx, conversion));
  if (needed.referralNumber) {
    facts.referralNumber = await referralNumber(trx, referral);
    if (facts.referralNumber === rule.when?.atReferrals)
      facts.milestonePaid = (await grantsForReferrer(trx, rule.id, referral.referrer_id, conversion.id)) > 0;
  }
  return ruleMiss(rule, facts) === null;
}

/** The customer bought before this purchase (or earlier in this same transaction). */
async function hasEarlierPurchase(trx: Knex, conversion: ConversionRow): Promise<boolean> {
  const earlier = await trx('conversions')
    .where({ participant_id: conversion.participant_id, type: 'purchase' })
    // Compared in SQL: a JavaScript date would drop the microseconds of created_at.
    .where('created_at', '<=', trx('conversions').select('created_at').where({ id: conversion.id }))
    .whereNot({ id: conversion.id })
    .first('id');
  return Boolean(earlier);
}

/** Which of the referrer's referrals this is: 1 for their first. */
async function referralNumber(trx: Knex, referral: ReferralRow): Promise<number> {
  // Compared in SQL: a JavaScript date would drop the microseconds of created_at.
  const [row] = await trx('referrals')
    .where({ referrer_id: referral.referrer_id })
    .where('created_at', '<=', trx('referrals').select('created_at').where({ id: referral.id }))
    .count({ n: '*' });
  return Number(row?.n ?? 0);
}

/** How many other conversions this rule has already rewarded through the referrer's referrals. */
async function grantsForReferrer(trx: Knex, ruleId: string, referrerId: string, conversionId: string): Promise<number> {
  const [row] = await trx('rewards as w')
    .join('referrals as r', 'r.id', 'w.referral_id')
    .where({ 'w.rule_id': ruleId, 'r.referrer_id': referrerId })
    .whereNot('w.conversion_id', conversionId)
    .whereNull('w.reverses')
    .whereNot('w.status', 'revoked')
    .countDistinct({ n: 'w.conversion_id' });
  return Number(row?.n ?? 0);
}

/**
 * A reward waits for a person while anything behind it is unconfirmed: the conversion
 * came from the browser only, or the referral is held, or only the browser made it.
 */
export const needsReview = (conversion: Pick<ConversionRow, 'verified'>, referral: Pick<ReferralRow, 'status' | 'verified'>) =>
  !conversion.verified || referral.status === 'held' || !referral.verified;

/**
 * Evaluates the program's rules for an attributed conversion. Pending while on hold
 * or under review (see needsReview); approved at once otherwise.
 *
 * With `recompute` (the server's figures replaced the browser's), grants that exist
 * and are not paid yet take the new amount, and grants whose rule no longer applies
 * are revoked: what the server reported decides, never what the browser claimed.
 */
export async function grantRewards(
  trx: Knex,
  program: ProgramRow,
  conversion: ConversionRow,
  referral: ReferralRow,
  options: { recompute?: boolean } = {},
): Promise<RewardRow[]> {
  const granted: RewardRow[] = [];
  const kept: string[] = [];
  const review = needsReview(conversion, referral);
  for (const rule of program.settings.rewardRules) {
    if (!(await ruleApplies(trx, rule, conversion, referral))) continue;
    if (
      rule.cap?.perReferrer !== undefined &&
      (await grantsForReferrer(trx, rule.id, referral.referrer_id, conversion.id)) >= rule.cap.perReferrer
    ) {
      await recordDecision(trx, {
        programId: program.id,
        subject: 'reward',
        outcome: 'rejected',
        reason: 'cap_reached',
        participantId: conversion.participant_id,
        referrerId: referral.referrer_id,
        conversionId: conversion.id,
        details: { rule: rule.id, cap: rule.cap.perReferrer },
      });
      continue;
    }
    const beneficiaries =
      rule.to === 'both'
        ? [referral.referrer_id, referral.referred_id]
        : [rule.to === 'referrer' ? referral.referrer_id : referral.referred_id];
    const { amount, currency } = rewardValue(rule, conversion);
    const holdDays = rule.holdDays ?? 0;
    const status: RewardStatus = holdDays === 0 && !review ? 'approved' : 'pending';
    for (const beneficiary of beneficiaries) {
      // The grant, its first transition and its row as rewardQuery reads it, in one
      // statement: one round trip per grant.
      const result = await prepared(
        trx,
        'grant_reward',
        `with granted as (
           insert into rewards (program_id, conversion_id, rule_id, beneficiary_id, referral_id, kind, amount, currency, coupon, percent, status, needs_review, available_at)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing returning *
         ), logged as (
           insert into reward_transitions (program_id, reward_id, from_status, to_status, actor, reason)
           select program_id, id, null, status, 'system', ? from granted
         )
         select w.*, p.external_id as participant, c.event_id
           from granted w join participants p on p.id = w.beneficiary_id join conversions c on c.id = w.conversion_id`,
        [
          program.id,
          conversion.id,
          rule.id,
          beneficiary,
          referral.id,
          rule.reward.kind,
          amount,
          currency,
          rule.reward.coupon ?? null,
          rule.reward.percent ?? null,
          status,
          review,
          new Date(Date.now() + holdDays * DAY_MS),
          `rule ${rule.id}`,
        ],
      );
      const row = result.rows[0] as RewardRow | undefined;
      if (row) {
        granted.push(row);
      } else if (options.recompute) {
        kept.push(...(await correctGrant(trx, conversion.id, rule.id, beneficiary, amount, currency)));
      }
    }
  }
  if (options.recompute)
    await revokeGrantsExcept(
      trx,
      program,
      conversion.id,
      [...granted.map((row) => row.id), ...kept],
      'no rule applies to the reported figures',
    );
  // In ledger order, as rewardQuery lists them.
  const rewards = granted.sort((x, y) => x.created_at.getTime() - y.created_at.getTime() || (x.id < y.id ? -1 : 1));
  await announce(trx, program, 'reward.created', rewards);
  await emailApprovedRewards(trx, program, rewards); // granted approved at once
  return rewards;
}

/** An unpaid grant takes the amount the server's figures give; the change is logged. */
async function correctGrant(
  trx: Knex,
  conversionId: string,
  ruleId: string,
  beneficiaryId: string,
  amount: number,
  currency: string | null,
): Promise<string[]> {
  const found = (await trx('rewards')
    .where({ conversion_id: conversionId, rule_id: ruleId, beneficiary_id: beneficiaryId })
    .whereIn('status', ['pending', 'approved'])
    .first('id', 'program_id', 'status', 'amount', 'currency')) as
    | { id: string; program_id: string; status: RewardStatus; amount: number; currency: string | null }
    | undefined;
  if (!found) return [];
  if (found.amount !== amount || found.currency !== currency) {
    await trx('rewards').where({ id: found.id }).update({ amount, currency, updated_at: trx.fn.now() });
    await logTransition(
      trx,
      found,
      found.status,
      found.status,
      'system',
      `amount ${found.amount} ${found.currency ?? ''} → ${amount} ${currency ?? ''} from the server's report`,
    );
  }
  return [found.id];
}

/** Revokes the conversion's unpaid grants other than `keep`, with the refund adjustments that follow them. */
async function revokeGrantsExcept(trx: Knex, program: ProgramRow, conversionId: string, keep: string[], reason: string): Promise<void> {
  const query = trx('rewards').where({ conversion_id: conversionId }).whereNull('reverses').whereIn('status', ['pending', 'approved']);
  if (keep.length) query.whereNotIn('id', keep);
  const grants = (await query.select('id', 'program_id', 'status')) as StatusRow[];
  await revoke(trx, program, [...grants, ...(await adjustmentsFollowing(trx, grants))], reason);
}

type StatusRow = { id: string; program_id: string; status: RewardStatus };

/**
 * The refund adjustments that follow these grants: an adjustment of an unpaid grant
 * moves with it while it is in its grant's status (a clawback of a paid one stands alone).
 */
export async function adjustmentsFollowing(trx: Knex, grants: Array<{ id: string }>): Promise<StatusRow[]> {
  if (!grants.length) return [];
  return (await trx('rewards as a')
    .join('rewards as g', 'g.id', 'a.reverses')
    .whereIn(
      'g.id',
      grants.map((grant) => grant.id),
    )
    .whereRaw('a.status = g.status')
    .select('a.id', 'a.program_id', 'a.status')) as StatusRow[];
}

async function revoke(trx: Knex, program: ProgramRow, rows: StatusRow[], reason: string): Promise<void> {
  if (!rows.length) return;
  await trx('rewards')
    .whereIn(
      'id',
      rows.map((row) => row.id),
    )
    .update({ status: 'revoked', updated_at: trx.fn.now() });
  for (const row of rows) await logTransition(trx, row, row.status, 'revoked', 'system', reason);
  await announce(
    trx,
    program,
    'reward.revoked',
    await loadRewards(
      trx,
      rows.map((row) => row.id),
    ),
  );
}

/** The unpaid rewards a referrer earned through one referral are revoked (the server named another referrer). */
export async function revokeRewardsOf(
  trx: Knex,
  program: ProgramRow,
  referralId: string,
  beneficiaryId: string,
  reason: string,
): Promise<void> {
  const rows = (await trx('rewards')
    .where({ referral_id: referralId, beneficiary_id: beneficiaryId })
    .whereIn('status', ['pending', 'approved'])
    .select('id', 'program_id', 'status')) as StatusRow[];
  await revoke(trx, program, rows, reason);
}

/** A referral's unpaid rewards go back to review (pending): the referral turned out to be held. */
export async function holdRewardsOf(trx: Knex, referralId: string, reason: string): Promise<void> {
  const rows = (await trx('rewards')
    .where({ referral_id: referralId })
    .whereIn('status', ['pending', 'approved'])
    .select('id', 'program_id', 'status')) as StatusRow[];
  if (!rows.length) return;
  await trx('rewards')
    .whereIn(
      'id',
      rows.map((row) => row.id),
    )
    .update({ status: 'pending', needs_review: true, updated_at: trx.fn.now() });
  for (const row of rows) await logTransition(trx, row, row.status, 'pending', 'system', `held: ${reason}`);
}

/** Pending rewards whose hold is over and that need no review become approved. */
async function approveDue(
  trx: Knex,
  program: ProgramRow,
  where: (query: Knex.QueryBuilder) => void,
  actor: string,
  reason: string,
): Promise<RewardRow[]> {
  const query = trx('rewards')
    .where({ program_id: program.id, status: 'pending', needs_review: false })
    .where('available_at', '<=', new Date());
  where(query);
  const rows = (await query.update({ status: 'approved', updated_at: trx.fn.now() }).returning(['id', 'program_id'])) as Array<{
    id: string;
    program_id: string;
  }>;
  for (const row of rows) await logTransition(trx, row, 'pending', 'approved', actor, reason);
  const approved = await loadRewards(
    trx,
    rows.map((row) => row.id),
  );
  await announce(
    trx,
    program,
    'reward.approved',
    approved.filter((reward) => !reward.reverses),
  );
  await emailApprovedRewards(trx, program, approved);
  return approved;
}

/** The server confirmed a browser conversion: its rewards no longer wait for review (unless the referral is held or unconfirmed). */
export async function confirmRewards(trx: Knex, program: ProgramRow, conversionId: string): Promise<RewardRow[]> {
  const held = trx('referrals')
    .select('id')
    .where((q) => q.where({ status: 'held' }).orWhere({ verified: false }));
  // The conversion's grants, and the refund adjustments that follow them.
  const ofConversion = (q: Knex.QueryBuilder) =>
    q.where((w) =>
      w.where({ conversion_id: conversionId }).orWhereIn('reverses', trx('rewards').select('id').where({ conversion_id: conversionId })),
    );
  await ofConversion(trx('rewards'))
    .where({ needs_review: true })
    .where((q) => q.whereNull('referral_id').orWhereNotIn('referral_id', held))
    .update({ needs_review: false });
  await approveDue(trx, program, ofConversion, 'system', 'conversion confirmed');
  return (await rewardQuery(trx).where('w.conversion_id', conversionId).orderBy('w.created_at').orderBy('w.id')) as RewardRow[];
}

/** Moves every due pending reward to approved; for the server's interval and `referral rewards release`. */
export async function releaseDueRewards(db: Knex): Promise<number> {
  const programs = (await db('programs')
    .whereIn(
      'id',
      db('rewards').distinct('program_id').where({ status: 'pending', needs_review: false }).where('available_at', '<=', new Date()),
    )
    .select('*')) as ProgramRow[];
  let released = 0;
  for (const program of programs) {
    released += (await db.transaction((trx) => approveDue(trx, program, () => {}, 'system', 'hold period over'))).length;
  }
  return released;
}
