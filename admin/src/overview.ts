/**
 * Overview: the program's totals for the selected range as cards, and the
 * activity chart.
 */
import { createChart } from './chart.ts';
import type { View, ViewContext } from './context.ts';
import { byId, el, show } from './dom.ts';
import { formatCount, formatMoney, formatPercent, moneyEntries } from './format.ts';
import type { MoneyByCurrency, Summary, Timeseries } from './types.ts';

function card(id: string, label: string, value: HTMLElement, note?: string): HTMLElement {
  return el('div', { class: `card card-${id}`, 'data-testid': `card-${id}` }, [
    el('div', { class: 'card-label' }, label),
    value,
    note ? el('div', { class: 'card-note' }, note) : null,
  ]);
}

function countValue(id: string, value: number): HTMLElement {
  return el('div', { class: 'card-value', 'data-testid': `card-${id}-value`, 'data-value': value }, formatCount(value));
}

/** One line per currency, each carrying its raw amount for scripts and tests. */
function moneyValue(id: string, money: MoneyByCurrency): HTMLElement {
  const entries = moneyEntries(money);
  const value = el('div', { class: 'card-value card-money', 'data-testid': `card-${id}-value` });
  if (!entries.length) value.append(el('span', { class: 'money money-none', 'data-empty': true }, '—'));
  for (const [currency, amount] of entries) {
    value.append(el('span', { class: 'money', 'data-currency': currency, 'data-amount': amount }, formatMoney(amount, currency)));
  }
  return value;
}

export function overviewView(ctx: ViewContext): View {
  const cards = byId('overview-cards');
  const interval = byId<HTMLSelectElement>('chart-interval');
  const empty = byId('chart-empty');
  const chart = createChart(byId('chart'));
  let generation = 0;

  function renderCards(summary: Summary) {
    cards.replaceChildren(
      card('clicks', 'Clicks', countValue('clicks', summary.clicks), `${formatCount(summary.visitors)} unique visitors`),
      card('signups', 'Signups', countValue('signups', summary.signups), 'referred customers'),
      card('purchases', 'Purchases', countValue('purchases', summary.purchases), 'by referred customers'),
      card(
        'conversion',
        'Conversion rate',
        el(
          'div',
          { class: 'card-value', 'data-testid': 'card-conversion-value', 'data-value': summary.conversionRate },
          formatPercent(summary.conversionRate),
        ),
        'signups per unique visitor',
      ),
      card('revenue', 'Revenue', moneyValue('revenue', summary.revenue), 'from referred customers'),
      card('rewards-pending', 'Rewards pending', moneyValue('rewards-pending', summary.rewards.pending), 'on hold or awaiting approval'),
      card('rewards-approved', 'Rewards approved', moneyValue('rewards-approved', summary.rewards.approved), 'ready to pay'),
      card('rewards-paid', 'Rewards paid', moneyValue('rewards-paid', summary.rewards.paid), 'paid out'),
    );
  }

  function renderChart(series: Timeseries) {
    const any = series.points.some((p) => p.clicks || p.signups || p.purchases);
    show(empty, !any);
    chart.draw(series);
  }

  async function load() {
    const mine = ++generation;
    const { from, to } = ctx.range();
    cards.setAttribute('aria-busy', 'true');
    const [summary, series] = await Promise.allSettled([
      ctx.api.get<Summary>('/v1/reports/summary', { from, to }),
      ctx.api.get<Timeseries>('/v1/reports/timeseries', { interval: interval.value, from, to }),
    ]);
    if (mine !== generation) return;
    cards.removeAttribute('aria-busy');
    if (summary.status === 'fulfilled') renderCards(summary.value);
    else ctx.fail(summary.reason);
    if (series.status === 'fulfilled') renderChart(series.value);
    else if (summary.status === 'fulfilled') ctx.fail(series.reason);
  }

  interval.addEventListener('change', () => void load());

  return {
    load,
    reset() {
      generation++;
      cards.replaceChildren();
      chart.destroy();
      show(empty, false);
    },
  };
}
