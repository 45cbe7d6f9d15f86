/**
 * Acting on the reward ledger: status transitions (approve, revoke, pay) and
 * refunds, which revoke unpaid rewards and claw back paid ones with negative entries.
 */
import type { Knex } from 'knex';
import type { RefundResponse, RewardResponse } from '../../../shared/responses.ts';
import type { RefundCreate, RewardTransition } from '../../../shared/schemas.ts';
import type { RewardStatus } from '../../../shared/types.ts';
import { conflict, notFound, unprocessable } from '../errors.ts';
import type { ConversionRow, ConversionSource } from './conversions.ts';
import type { ProgramRow } from './programs.ts';
import { adjustmentsFollowing, presentReward, rewardQuery, type RewardRow } from './rewards.ts';
import { applyStats } from './rollups.ts';
import { storedAnswer } from './work.ts';
import { enqueueWebhook, type WebhookType } from './webhooks.ts';
import { emailApprovedRewards } from './emails.ts';

export type RewardAction = 'approve' | 'revoke' | 'pay';

const TRANSITIONS: Record<RewardAction, { from: RewardStatus[]; to: RewardStatus; webhook: WebhookType }> = {
  approve: { from: ['pending'], to: 'approved', webhook: 'reward.approved' },
  pay: { from: ['approved'], to: 'paid', webhook: 'reward.paid' },
  revoke: { from: ['pending', 'approved'], to: 'revoked', webhook: 'reward.revoked' },
};

async function loadReward(trx: Knex, id: string): Promise<RewardRow> {
  return (await rewardQuery(trx).where('w.id', id).first()) as RewardRow;
}

/**
 * Moves one entry (and the unpaid adjustments that follow it) to a new status,
 * recording who did it and why.
 */
async function moveReward(
  trx: Knex,
  program: ProgramRow,
  reward: RewardRow,
  to: RewardStatus,
  actor: string,
  reason: string | null,
  webhook?: WebhookType,
) {
  const ids = [reward.id, ...(await adjustmentsFollowing(trx, [reward])).map((row) => row.id)];
  await trx('rewards')
    .whereIn('id', ids)
    .update({ status: to, updated_at: trx.fn.now(), ...(to === 'approved' ? { needs_review: false } : {}) });
  await trx('reward_transitions').insert(
    ids.map((id) => ({ program_id: program.id, reward_id: id, from_status: reward.status, to_status: to, actor, reason })),
  );
  const moved = await loadReward(trx, reward.id);
  if (webhook) await enqueueWebhook(trx, program, webhook, { reward: presentReward(moved), reason });
  if (to === 'approved') await emailApprovedRewards(trx, program, [moved]);
  return moved;
}

/**
 * POST /v1/rewards/:id/approve|revoke|pay: only pending→approved→paid and
 * pending|approved→revoked. Approving before the hold ends (`availableAt`) takes
 * `force` and a reason; the override is recorded with the transition.
 */
export async function transitionReward(
  db: Knex,
  program: ProgramRow,
  id: string,
  action: RewardAction,
  actor: string,
  body: RewardTransition = {},
): Promise<RewardResponse> {
  const { reason, force } = body ?? {};
  return db.transaction(async (trx) => {
    const locked = await trx('rewards').where({ id, program_id: program.id }).forUpdate().first('id');
    if (!locked) throw notFound('Reward');
    const reward = await loadReward(trx, id);
    if (reward.reverses) {
      // A partial-refund adjustment moves with its reward; only a clawback of a paid reward stands alone.
      const grant = (await trx('rewards').where({ id: reward.reverses }).first('status')) as { status: RewardStatus };
      if (grant.status !== 'paid') {
        throw conflict('adjustment_follows_reward', `This entry adjusts reward ${reward.reverses}; act on that reward instead`);
      }
    }
    const rule = TRANSITIONS[action];
    if (!rule.from.includes(reward.status)) {
      throw conflict('invalid_transition', `A ${reward.status} reward cannot be moved to ${rule.to}`);
    }
    const early = action === 'approve' && reward.available_at.getTime() > Date.now();
    if (early && !force) {
      throw conflict(
        'hold_not_over',
        `This reward is on hold until ${reward.available_at.toISOString()}; to approve it now, send { "force": true, "reason": "…" }`,
      );
    }
    const recorded = early ? `forced before the hold ended (${reward.available_at.toISOString()}): ${reason}` : (reason ?? null);
    // The override ends the hold: the reward is due now (a payout run may pay it).
    if (early) await trx('rewards').where({ id: reward.id }).update({ available_at: trx.fn.now() });
    return presentReward(await moveReward(trx, program, reward, rule.to, actor, recorded, rule.webhook));
  });
}

/** The amount of a grant already reversed by earlier refunds (positive number). */
async function reversedSoFar(trx: Knex, rewardId: string): Promise<number> {
  const [row] = await trx('rewards').where({ reverses: rewardId }).whereNot({ status: 'revoked' }).sum({ total: 'amount' });
  return -Number(row?.total ?? 0);
}

/**
 * Brings the purchase's grants to `after` refunded: unpaid grants are revoked once it is
 * refunded in full; otherwise percentage grants take negative entries for the share
 * refunded so far (fixed ones wait for the full refund), each naming the refund.
 */
async function reverseGrants(
  trx: Knex,
  program: ProgramRow,
  purchase: ConversionRow,
  refund: ConversionRow,
  after: number,
): Promise<RewardRow[]> {
  const total = purchase.amount ?? 0;
  const grants = (await rewardQuery(trx)
    .where('w.conversion_id', purchase.id)
    .whereNull('w.reverses')
    .orderBy('w.created_at')) as RewardRow[];
  const affected: RewardRow[] = [];
  for (const grant of grants) {
    if (grant.status === 'revoked') continue;
    const full = after >= total;
    if (grant.status !== 'paid' && full) {
      affected.push(await moveReward(trx, program, grant, 'revoked', 'refund', `refund ${refund.event_id}`, 'reward.revoked'));
      continue;
    }
    const target = full ? grant.amount : grant.percent !== null ? Math.floor((grant.amount * after) / total) : 0;
    const delta = target - (await reversedSoFar(trx, grant.id));
    if (delta <= 0) continue;
    const [row] = await trx('rewards')
      .insert({
        program_id: program.id,
        conversion_id: refund.id,
        rule_id: grant.rule_id,
        beneficiary_id: grant.beneficiary_id,
        referral_id: grant.referral_id,
        kind: grant.kind,
        amount: -delta,
        currency: grant.currency,
        percent: grant.percent,
        // Unpaid: the adjustment follows its grant; paid: a clawback to settle on the next payout.
        status: grant.status === 'paid' ? 'approved' : grant.status,
        needs_review: grant.status === 'paid' ? false : grant.needs_review,
        available_at: grant.status === 'paid' ? new Date() : grant.available_at,
        reverses: grant.id,
      })
      .returning(['id', 'status']);
    const created = row as { id: string; status: RewardStatus };
    await trx('reward_transitions').insert({
      program_id: program.id,
      reward_id: created.id,
      from_status: null,
      to_status: created.status,
      actor: 'refund',
      reason: `refund ${refund.event_id}`,
    });
    const entry = await loadReward(trx, created.id);
    await enqueueWebhook(trx, program, 'reward.created', { reward: presentReward(entry) });
    affected.push(entry);
  }
  return affected;
}

/** What has been refunded of a purchase so far. */
export async function refundedSoFar(trx: Knex, purchaseId: string): Promise<number> {
  const [sum] = await trx('conversions').where({ refund_of: purchaseId, type: 'refund' }).sum({ total: 'amount' });
  return Number(sum?.total ?? 0);
}

/**
 * A purchase attributed after refunds of it were recorded: its grants take those refunds
 * as if they had come after (the latest refund names the entries).
 */
export async function applyRefundsSoFar(trx: Knex, program: ProgramRow, purchase: ConversionRow): Promise<void> {
  const refunds = (await trx('conversions')
    .where({ refund_of: purchase.id, type: 'refund' })
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])) as ConversionRow[];
  const [latest] = refunds;
  if (!latest) return;
  const after = refunds.reduce((sum, refund) => sum + Number(refund.amount ?? 0), 0);
  await reverseGrants(trx, program, purchase, latest, after);
}

/** What POST /v1/refunds answers (also kept as the refund's stored reply). */
export type RefundResult = RefundResponse;

/**
 * POST /v1/refunds: idempotent on eventId. Percentage rewards are pro-rated by the
 * share refunded so far (floors telescope, so a full refund nets them to zero);
 * fixed rewards are reversed when the purchase is refunded in full.
 */
export async function recordRefund(
  db: Knex,
  program: ProgramRow,
  input: RefundCreate,
  options?: { source?: ConversionSource },
): Promise<RefundResult>;
/** With `refundedTotal` (a cumulative figure, as Stripe sends): refunds what is new, or null when nothing is. */
export async function recordRefund(
  db: Knex,
  program: ProgramRow,
  input: RefundCreate,
  options: { source?: ConversionSource; refundedTotal: number },
): Promise<RefundResult | null>;
export async function recordRefund(
  db: Knex,
  program: ProgramRow,
  input: RefundCreate,
  { source = 'server', refundedTotal }: { source?: ConversionSource; refundedTotal?: number } = {},
): Promise<RefundResult | null> {
  return db.transaction(async (trx) => {
    const find = (type: string, eventId: string) =>
      trx('conversions').where({ program_id: program.id, type, event_id: eventId }).first() as Promise<ConversionRow | undefined>;
    const answer = async (refund: ConversionRow) => (await storedAnswer(trx, refund.id)) as RefundResult;
    const stored = await find('refund', input.eventId);
    if (stored) return answer(stored);
    const found = await find('purchase', input.purchaseEventId);
    if (!found) throw notFound('Purchase');
    // Concurrent refunds of one purchase take turns, so "refunded so far" is exact.
    const purchase = (await trx('conversions').where({ id: found.id }).forUpdate().first()) as ConversionRow;
    const again = await find('refund', input.eventId);
    if (again) return answer(again);
    const total = purchase.amount ?? 0;
    const before = await refundedSoFar(trx, purchase.id);
    if (refundedTotal !== undefined && Math.min(refundedTotal, total) <= before) return null;
    const amount = refundedTotal !== undefined ? Math.min(refundedTotal, total) - before : (input.amount ?? total - before);
    if (amount <= 0 || before + amount > total) {
      throw unprocessable(
        'refund_exceeds_purchase',
        `Only ${total - before} of ${total} ${purchase.currency ?? ''} is left to refund`.trim(),
        {
          amount: `must be between 1 and ${total - before}`,
        },
      );
    }
    const inserted = await trx.raw(
      `insert into conversions (program_id, participant_id, type, event_id, amount, currency, verified, source, refund_of)
       values (?, ?, 'refund', ?, ?, ?, true, ?, ?) on conflict do nothing returning *`,
      [program.id, purchase.participant_id, input.eventId, amount, purchase.currency, source, purchase.id],
    );
    const refund = inserted.rows[0] as ConversionRow | undefined;
    if (!refund) return answer((await find('refund', input.eventId)) as ConversionRow);

    // Only a purchase that counted for a referrer (referred before or as it was made) takes revenue back.
    const referral = (await trx('referrals')
      .where({ referred_id: purchase.participant_id })
      .where('created_at', '<=', trx('conversions').select('created_at').where({ id: purchase.id }))
      .first('referrer_id')) as { referrer_id: string } | undefined;
    if (referral) {
      await applyStats(trx, [
        {
          programId: program.id,
          participantId: referral.referrer_id,
          at: refund.created_at,
          revenue: { currency: purchase.currency ?? 'XXX', amount: -amount },
        },
      ]);
    }
    const after = before + amount;
    const affected = await reverseGrants(trx, program, purchase, refund, after);
    const result: RefundResult = {
      refund: {
        id: refund.id,
        eventId: refund.event_id,
        purchaseEventId: purchase.event_id,
        amount,
        currency: purchase.currency,
        refundedTotal: after,
        createdAt: refund.created_at.toISOString(),
      },
      rewards: affected.map(presentReward),
    };
    await trx('conversion_answers').insert({ conversion_id: refund.id, response: JSON.stringify(result) });
    return result;
  });
}
