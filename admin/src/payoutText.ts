/**
 * How the payouts tab words things: payout methods, where an item is paid, why a
 * referrer was left out of a run, the files a run offers, totals per currency,
 * counts per status, and the API's errors as one readable line.
 */
import type { PayoutMethod } from '../../shared/schemas.ts';
import { ApiError } from './api.ts';
import { formatCount, formatMoney } from './format.ts';
import type { MoneyByCurrency, Payout, PayoutItem, PayoutSkipped } from './types.ts';

const METHODS: Record<PayoutMethod, string> = {
  manual: 'Manual',
  paypal: 'PayPal',
  wise: 'Wise',
  stripe_connect: 'Stripe Connect',
};

export const methodLabel = (method: PayoutMethod): string => METHODS[method] ?? method;

/** The email or Stripe account an item is paid to; manual items have none. */
export const destinationOf = (item: Pick<PayoutItem, 'destination'>): string =>
  item.destination.email ?? item.destination.stripeAccount ?? '—';

/** Why a referrer and currency waits for a later run, in the operator's words. */
export function skipReason(skipped: PayoutSkipped, minimum: MoneyByCurrency): string {
  switch (skipped.reason) {
    case 'below_minimum': {
      const floor = minimum[skipped.currency];
      return floor === undefined ? 'Below the minimum' : `Below the ${formatMoney(floor, skipped.currency)} minimum`;
    }
    case 'nothing_to_pay':
      return 'Nothing to pay: refunds clawed back as much as was earned';
    case 'no_payout_details':
      return 'No payout details: their PayPal or Wise email, or Stripe account, is missing';
    case 'erased':
      return 'Erased: their personal data was deleted';
    default:
      return skipped.reason;
  }
}

/** Per currency, the sum of the items' amounts. */
export function totalsOf(items: Array<Pick<PayoutItem, 'amount' | 'currency'>>): MoneyByCurrency {
  const totals: MoneyByCurrency = {};
  for (const item of items) totals[item.currency] = (totals[item.currency] ?? 0) + item.amount;
  return totals;
}

/** "1 item", "3 items"; "referrer", "referrers". */
export const plural = (n: number, one: string, many = `${one}s`): string => `${formatCount(n)} ${n === 1 ? one : many}`;

/** "2 pending · 1 paid · 1 failed". */
export function statusCounts(items: Array<Pick<PayoutItem, 'status'>>): string {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item.status, (counts.get(item.status) ?? 0) + 1);
  return (
    (['pending', 'paid', 'failed'] as const)
      .filter((status) => counts.has(status))
      .map((status) => `${formatCount(counts.get(status) ?? 0)} ${status}`)
      .join(' · ') || 'no items'
  );
}

/** One download button per file: PayPal takes one currency per file, so one per currency. */
export function payoutFiles(payout: Payout): Array<{ label: string; query: string; testid: string }> {
  const open = payout.items.filter((item) => item.status !== 'failed');
  const paypal = [...new Set(open.filter((item) => item.method === 'paypal').map((item) => item.currency))].sort();
  const list = paypal.map((currency) => ({
    label: paypal.length > 1 ? `PayPal CSV · ${currency}` : 'PayPal CSV',
    query: paypal.length > 1 ? `format=paypal&currency=${currency}` : 'format=paypal',
    testid: paypal.length > 1 ? `payout-file-paypal-${currency}` : 'payout-file-paypal',
  }));
  if (open.some((item) => item.method === 'wise')) list.push({ label: 'Wise CSV', query: 'format=wise', testid: 'payout-file-wise' });
  list.push({ label: 'All items CSV', query: 'format=generic', testid: 'payout-file-generic' });
  return list;
}

/** The run's short name, as its files are named (`payout-1a2b3c4d-paypal.csv`). */
export const shortId = (id: string): string => id.slice(0, 8);

/**
 * An API failure as one line: its message, and what it says about the cause (a 422
 * nothing_to_pay lists who was left out and why). Null for a 401: the shell has
 * already sent the person back to the sign-in form.
 */
export function errorLine(error: unknown): string | null {
  if (error instanceof ApiError) {
    if (error.status === 401) return null;
    const message = error.message.replace(/\.$/, '');
    const details = Object.entries(error.fields).map(([path, text]) => (path === '_' ? text : `${path}: ${text}`));
    return details.length ? `${message} (${details.join('; ')}).` : `${message}.`;
  }
  return 'Something went wrong in the dashboard; reload the page.';
}
