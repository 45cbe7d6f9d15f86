/**
 * Stripe Connect payouts: each pending `stripe_connect` item of a run becomes one
 * transfer to the referrer's connected account, through the official `stripe`
 * package, with an idempotency key per item (a retry never pays twice). Stripe's
 * refusal fails the item and frees its rewards; a network failure leaves it pending,
 * to be retried (`POST /v1/payouts/:id/transfer`) under the same key.
 */
import type { Knex } from 'knex';
import type Stripe from 'stripe';
import { findPayout, markItemsFailed, markItemsPaid, payoutItems, type PayoutHooks } from './payouts.ts';
import type { ProgramRow } from './programs.ts';

export const transferKey = (itemId: string) => `payout-item-${itemId}`;

/** Stripe answered (the request was refused): retrying the same request cannot succeed. */
const isRefusal = (error: unknown) => {
  const status = (error as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 409 && status !== 429;
};

export async function transferPendingItems(
  db: Knex,
  program: ProgramRow,
  payoutId: string,
  stripe: Stripe,
  actor: string,
  hooks?: PayoutHooks,
) {
  const payout = await findPayout(db, program.id, payoutId);
  const items = (await payoutItems(db, payout)).filter((item) => item.status === 'pending' && item.method === 'stripe_connect');
  const errors: Array<{ item: string; error: string }> = [];
  for (const item of items) {
    try {
      const transfer = await stripe.transfers.create(
        {
          amount: Number(item.amount),
          currency: item.currency.toLowerCase(),
          destination: item.destination.stripeAccount as string,
          transfer_group: `payout_${payout.id}`,
          description: `${program.name} referral rewards`,
          metadata: { payout: payout.id, item: item.id, participant: item.participant },
        },
        { idempotencyKey: transferKey(item.id) },
      );
      await db('payout_items').where({ id: item.id }).update({ transfer_id: transfer.id });
      await markItemsPaid(db, program, payout.id, { items: [item.id], reference: transfer.id }, actor, hooks);
    } catch (error) {
      const message = (error as Error).message?.slice(0, 300) ?? 'transfer failed';
      if (isRefusal(error))
        await markItemsFailed(db, program, payout.id, { items: [item.id], reason: `Stripe refused the transfer: ${message}` });
      errors.push({ item: item.id, error: message });
    }
  }
  return errors;
}
