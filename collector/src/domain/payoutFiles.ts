/**
 * A payout run as the file a provider takes for bulk payments, amounts in major units
 * with the currency's own number of decimals (JPY has none):
 * - `paypal`: Payouts Web, one currency per file, no header row: recipient email,
 *   amount, currency, customer id (our item id), note to the recipient, wallet.
 * - `wise`: the batch "send by email" template: name, recipientEmail,
 *   paymentReference, receiverType, amountCurrency, amount, sourceCurrency,
 *   targetCurrency (the recipient gets the exact amount: amountCurrency `target`).
 * - `generic`: every item with its participant, method, destination and status.
 */
import type { PayoutExportQuery } from '../../../shared/schemas.ts';
import { unprocessable } from '../errors.ts';
import { type Cell, csvRow } from './csv.ts';
import type { PayoutItemRow, PayoutRow } from './payouts.ts';

/** Decimal places of a currency's minor unit (USD 2, JPY 0, BHD 3). */
export function minorDigits(currency: string): number {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
}

/** Minor units as a plain decimal in major units: 4900 USD → "49.00", 500 JPY → "500". */
export function majorUnits(amount: number, currency: string): string {
  const digits = minorDigits(currency);
  const sign = amount < 0 ? '-' : '';
  const whole = Math.abs(amount);
  if (digits === 0) return `${sign}${whole}`;
  const scale = 10 ** digits;
  return `${sign}${Math.floor(whole / scale)}.${String(whole % scale).padStart(digits, '0')}`;
}

export function payoutFile(
  program: { name: string },
  payout: PayoutRow,
  items: PayoutItemRow[],
  query: PayoutExportQuery,
): { filename: string; body: string } {
  const note = `${program.name} referral rewards`;
  const reference = `Payout ${payout.id.slice(0, 8)}`;
  const pending = items.filter((item) => item.status !== 'failed');
  let rows: Cell[][];
  if (query.format === 'paypal') {
    const paypal = pending.filter((item) => item.method === 'paypal' && (!query.currency || item.currency === query.currency));
    const currencies = new Set(paypal.map((item) => item.currency));
    if (currencies.size > 1) {
      throw unprocessable('one_currency_per_file', 'PayPal takes one currency per file: add ?currency=…', {
        currency: `one of ${[...currencies].join(', ')}`,
      });
    }
    rows = paypal.map((item) => [item.destination.email, majorUnits(item.amount, item.currency), item.currency, item.id, note, 'PAYPAL']);
  } else if (query.format === 'wise') {
    rows = [
      ['name', 'recipientEmail', 'paymentReference', 'receiverType', 'amountCurrency', 'amount', 'sourceCurrency', 'targetCurrency'],
      ...pending
        .filter((item) => item.method === 'wise' && (!query.currency || item.currency === query.currency))
        .map((item) => [
          item.name ?? item.participant,
          item.destination.email,
          reference,
          'PERSON',
          'target',
          majorUnits(item.amount, item.currency),
          item.currency,
          item.currency,
        ]),
    ];
  } else {
    rows = [
      [
        'item_id',
        'participant_external_id',
        'name',
        'email',
        'method',
        'destination',
        'currency',
        'amount',
        'amount_minor',
        'status',
        'reference',
      ],
      ...items
        .filter((item) => !query.currency || item.currency === query.currency)
        .map((item) => [
          item.id,
          item.participant,
          item.name,
          item.email,
          item.method,
          item.destination.email ?? item.destination.stripeAccount ?? '',
          item.currency,
          majorUnits(item.amount, item.currency),
          Number(item.amount),
          item.status,
          item.reference,
        ]),
    ];
  }
  const suffix = query.currency ? `-${query.currency.toLowerCase()}` : '';
  return { filename: `payout-${payout.id.slice(0, 8)}-${query.format}${suffix}.csv`, body: rows.map(csvRow).join('') };
}
