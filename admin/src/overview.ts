/**
 * Overview: the program's totals for the selected range as cards (money apart by
 * currency, rewards apart by kind), the activity chart and the revenue chart.
 */
import { type Chart, COUNT_SERIES, createChart, revenueSeries } from './chart.ts';
import type { View, ViewContext } from './context.ts';
import { byId, type Child, el, show } from './dom.ts';
import { formatCount, formatMoney, formatPercent, moneyEntries } from './format.ts';
import type { MoneyByCurrency, Summary, Timeseries } from './types.ts';

type RewardStage = 'pending' | 'approved' | 'paid';

function card(id: string, label: string, value: HTMLElement, note?: Child | Child[]): HTMLElement {
  return el('div', { class: `card card-${id}`, 'data-testid': `card-${id}` }, [
    el('div', { class: 'card-label' }, label),
    value,
    note ? el('div', { class: 'card-note', 'data-testid': `card-${id}-note` }, note) : null,
  ]);
}

function countValue(id: string, value: number): HTMLElement {
  return el('div', { class: 'card-value', 'data-testid': `card-${id}-value`, 'data-value': value }, formatCount(value));
}

const money = (currency: string, amount: number, kind?: string) =>
  el('span', { class: 'money', 'data-kind': kind, 'data-currency': currency, 'data-amount': amount }, formatMoney(amount, currency));

const nothing = () => el('span', { class: 'money money-none', 'data-empty': true }, '—');

/** One line per currency, each carrying its raw amount for scripts and tests. */
function moneyValue(id: string, sums: MoneyByCurrency): HTMLElement {
  const entries = moneyEntries(sums);
  const value = el('div', { class: 'card-value card-money', 'data-testid': `card-${id}-value` });
  if (!entries.length) value.append(nothing());
  for (const [currency, amount] of entries) value.append(money(currency, amount));
  return value;
}

/**
 * Rewards of one stage with cash, store credit and coupons apart: a line per kind and
 * currency ("Cash $80.00", "Credit $17.10"), coupons counted. Never one sum of both.
 */
function rewardsValue(id: string, summary: Summary, stage: RewardStage): HTMLElement {
  const value = el('div', { class: 'card-value card-kinds', 'data-testid': `card-${id}-value` });
  const kinds = summary.rewardsByKind;
  for (const [kind, label] of [
    ['cash', 'Cash'],
    ['credit', 'Credit'],
  ] as const) {
    for (const [currency, amount] of moneyEntries(kinds[kind][stage])) {
      value.append(
        el('div', { class: 'kind-line', 'data-kind': kind }, [el('span', { class: 'kind-label' }, label), money(currency, amount, kind)]),
      );
    }
  }
  const coupons = kinds.coupon[stage];
  if (coupons) {
    value.append(
      el('div', { class: 'kind-line', 'data-kind': 'coupon' }, [
        el('span', { class: 'kind-label' }, coupons === 1 ? 'Coupon' : 'Coupons'),
        el('span', { class: 'money', 'data-kind': 'coupon', 'data-count': coupons }, formatCount(coupons)),
      ]),
    );
  }
  if (!value.childElementCount) value.append(nothing());
  return value;
}

function renderCards(cards: HTMLElement, summary: Summary) {
  const byCodeOnly = summary.signups - summary.clickedSignups;
  cards.replaceChildren(
    card('clicks', 'Clicks', countValue('clicks', summary.clicks), `${formatCount(summary.visitors)} unique visitors`),
    card(
      'signups',
      'Signups',
      countValue('signups', summary.signups),
      byCodeOnly > 0 ? `referred customers, ${formatCount(byCodeOnly)} by code without a click` : 'referred customers',
    ),
    card('purchases', 'Purchases', countValue('purchases', summary.purchases), 'by referred customers'),
    card(
      'conversion',
      'Conversion rate',
      el(
        'div',
        { class: 'card-value', 'data-testid': 'card-conversion-value', 'data-value': summary.conversionRate },
        formatPercent(summary.conversionRate),
      ),
      // The definition, with its two numbers: never a share above 100%.
      [
        `Visitors who clicked and then signed up: ${formatCount(summary.clickedSignups)} of ${formatCount(summary.visitors)}`,
        el('span', { class: 'sr-only' }, ' (signups from visitors who clicked ÷ unique visitors who clicked)'),
      ],
    ),
    card('revenue', 'Revenue', moneyValue('revenue', summary.revenue), 'from referred customers, less refunds'),
    card('rewards-pending', 'Rewards pending', rewardsValue('rewards-pending', summary, 'pending'), 'on hold or awaiting approval'),
    card('rewards-approved', 'Rewards approved', rewardsValue('rewards-approved', summary, 'approved'), 'ready to pay'),
    card('rewards-paid', 'Rewards paid', rewardsValue('rewards-paid', summary, 'paid'), 'paid out or credited'),
  );
}

export function overviewView(ctx: ViewContext): View {
  const cards = byId('overview-cards');
  const interval = byId<HTMLSelectElement>('chart-interval');
  const empty = byId('chart-empty');
  const revenueEmpty = byId('revenue-chart-empty');
  const activity: Chart = createChart(byId('chart'), byId('chart-legend'), 'chart');
  const revenueBox = byId('revenue-chart');
  const revenue: Chart = createChart(revenueBox, byId('revenue-chart-legend'), 'revenue-chart');
  let generation = 0;

  function renderCharts(series: Timeseries) {
    show(empty, !series.points.some((p) => p.clicks || p.signups || p.purchases));
    activity.draw(series, COUNT_SERIES);
    const lines = revenueSeries(series);
    show(revenueEmpty, !lines.length);
    show(revenueBox, lines.length > 0);
    const currencies = lines.map((line) => line.key.slice('revenue-'.length));
    revenue.draw(series, lines, { money: currencies.length === 1 ? (currencies[0] as string) : null });
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
    if (summary.status === 'fulfilled') renderCards(cards, summary.value);
    else ctx.fail(summary.reason);
    if (series.status === 'fulfilled') renderCharts(series.value);
    else if (summary.status === 'fulfilled') ctx.fail(series.reason);
  }

  interval.addEventListener('change', () => void load());

  return {
    load,
    reset() {
      generation++;
      cards.replaceChildren();
      activity.destroy();
      revenue.destroy();
      show(empty, false);
      show(revenueEmpty, false);
    },
  };
}
