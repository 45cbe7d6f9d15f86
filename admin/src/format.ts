/**
 * Formatting for people: counts, percentages, money in minor units, dates.
 * Dates in the API are UTC days (`YYYY-MM-DD`) and ISO timestamps.
 */
import type { MoneyByCurrency } from './types.ts';

const DAY_MS = 86_400_000;
const count = new Intl.NumberFormat(undefined);
const percent = new Intl.NumberFormat(undefined, { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const moneyFormats = new Map<string, Intl.NumberFormat | null>();

export const formatCount = (value: number): string => count.format(value);

/** A rate in 0..1 as a percentage with one decimal. */
export const formatPercent = (rate: number): string => percent.format(Number.isFinite(rate) ? rate : 0);

function moneyFormat(currency: string): Intl.NumberFormat | null {
  if (!moneyFormats.has(currency)) {
    let format: Intl.NumberFormat | null;
    try {
      format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    } catch {
      format = null; // not a currency Intl knows
    }
    moneyFormats.set(currency, format);
  }
  return moneyFormats.get(currency) ?? null;
}

/** How many minor units a currency's major unit has, as a power of ten (USD 2, JPY 0). */
export function minorDigits(currency: string): number {
  return moneyFormat(currency)?.resolvedOptions().maximumFractionDigits ?? 2;
}

/** Integer minor units in a currency (`1234`, `USD` → `$12.34`; JPY has no minor unit). */
export function formatMoney(amount: number, currency: string | null): string {
  if (!currency) return formatCount(amount);
  const format = moneyFormat(currency);
  if (!format) return `${formatCount(amount)} ${currency}`;
  return format.format(amount / 10 ** minorDigits(currency));
}

/** An amount already in major units (`12.5`, `USD` → `$12.50`), for chart axes. */
export function formatMajor(value: number, currency: string): string {
  const format = moneyFormat(currency);
  return format ? format.format(value) : `${formatCount(value)} ${currency}`;
}

/** Per-currency sums, largest first; empty when there is nothing. */
export function moneyEntries(money: MoneyByCurrency | null | undefined): Array<[string, number]> {
  return Object.entries(money ?? {})
    .filter(([, amount]) => typeof amount === 'number' && amount !== 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/** Per-currency sums on one line (`$12.34 · €5.00`), or an em dash. */
export function formatMoneyMap(money: MoneyByCurrency | null | undefined): string {
  const entries = moneyEntries(money);
  return entries.length ? entries.map(([currency, amount]) => formatMoney(amount, currency)).join(' · ') : '—';
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

/** The UTC day of a date, as the API writes it. */
export const isoDay = (date: Date): string => date.toISOString().slice(0, 10);

export const addDays = (day: string, days: number): string => isoDay(new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS));

/** A UTC day as Unix seconds (the x axis of the chart). */
export const daySeconds = (day: string): number => Date.parse(`${day}T00:00:00Z`) / 1000;

export const isDay = (value: string): boolean => /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`));
