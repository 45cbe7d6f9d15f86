/**
 * Numbers, money and dates as the referrer reads them (their browser's locale).
 */

const counts = new Intl.NumberFormat();

export const formatCount = (n: number) => counts.format(n);

/** Minor units of `currency` as money: 4900 USD → $49.00. */
export function formatMoney(minor: number, currency: string): string {
  try {
    const format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(minor / 10 ** digits);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

const days = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
const dates = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const times = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A UTC day (YYYY-MM-DD) as "4 Dec". */
export const formatDay = (day: string) => days.format(new Date(`${day}T00:00:00Z`));
/** An instant as a date in the reader's zone. */
export const formatDate = (iso: string) => dates.format(new Date(iso));
/** An instant as date and time in the reader's zone. */
export const formatTime = (iso: string) => times.format(new Date(iso));
