/**
 * Totals by participant for the rewards queue's filter (GET /v1/rewards/totals): what
 * each person is owed or was paid, cash and store credit apart per currency, coupons
 * counted, with the whole filter's total as the last row.
 */
import type { ViewContext } from './context.ts';
import { byId, el, show } from './dom.ts';
import { formatCount, formatMoneyMap } from './format.ts';
import type { RewardTotals, RewardTotalsRow } from './types.ts';

const STATUS_WORDS: Record<string, string> = {
  pending: 'pending rewards',
  approved: 'approved rewards, ready to pay',
  paid: 'paid rewards',
  revoked: 'revoked rewards',
};

function cells(row: Omit<RewardTotalsRow, 'participant'>): HTMLTableCellElement[] {
  return [
    el('td', { class: 'num', 'data-col': 'rewards' }, formatCount(row.rewards)),
    el('td', { class: 'num', 'data-col': 'cash' }, formatMoneyMap(row.cash)),
    el('td', { class: 'num', 'data-col': 'credit' }, formatMoneyMap(row.credit)),
    el('td', { class: 'num', 'data-col': 'coupons' }, row.coupons ? formatCount(row.coupons) : '—'),
  ];
}

export interface RewardTotalsPanel {
  load: () => Promise<void>;
  reset: () => void;
}

export function rewardTotalsPanel(ctx: ViewContext, status: () => string): RewardTotalsPanel {
  const body = byId<HTMLTableSectionElement>('reward-totals-body');
  const foot = byId<HTMLTableSectionElement>('reward-totals-foot');
  const caption = byId('reward-totals-caption');
  const empty = byId('reward-totals-empty');
  let generation = 0;

  function render(totals: RewardTotals) {
    body.replaceChildren(
      ...totals.data.map((row) =>
        el('tr', { 'data-testid': 'reward-total-row', 'data-participant': row.participant }, [
          el('td', { class: 'strong' }, row.participant),
          ...cells(row),
        ]),
      ),
    );
    foot.replaceChildren();
    if (totals.data.length) {
      const people = totals.total.participants;
      foot.append(
        el('tr', { class: 'total-row', 'data-testid': 'reward-total-all' }, [
          el('th', { scope: 'row' }, `All ${formatCount(people)} ${people === 1 ? 'participant' : 'participants'}`),
          ...cells(totals.total),
        ]),
      );
    }
    const what = totals.status ? (STATUS_WORDS[totals.status] ?? `${totals.status} rewards`) : 'all rewards';
    caption.textContent = `${what[0]?.toUpperCase()}${what.slice(1)}${totals.truncated ? `; the ${formatCount(totals.data.length)} participants with the most are listed, the total counts everyone` : ''}.`;
    show(empty, totals.data.length === 0);
  }

  async function load() {
    const mine = ++generation;
    try {
      const totals = await ctx.api.get<RewardTotals>('/v1/rewards/totals', { status: status() });
      if (mine === generation) render(totals);
    } catch (error) {
      if (mine === generation) ctx.fail(error);
    }
  }

  return {
    load,
    reset() {
      generation++;
      body.replaceChildren();
      foot.replaceChildren();
      caption.textContent = '';
      show(empty, false);
    },
  };
}
