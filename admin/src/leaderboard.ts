/**
 * Leaderboard: referrers ranked by clicks, signups, purchases or conversion
 * rate (sorted by the server; click a heading to change it).
 */
import type { View, ViewContext } from './context.ts';
import { byId, el } from './dom.ts';
import { formatCount, formatDateTime, formatMoneyMap, formatPercent } from './format.ts';
import { pagedTable } from './table.ts';
import type { LeaderboardPage, LeaderboardSort, ReferrerRow } from './types.ts';

const PAGE_SIZE = 50;
const SORTS: LeaderboardSort[] = ['clicks', 'signups', 'purchases', 'conversionRate'];

function renderRow(row: ReferrerRow, index: number): HTMLTableRowElement {
  const who = row.name || row.email;
  return el('tr', { 'data-testid': 'leaderboard-row', 'data-participant': row.participant }, [
    el('td', { class: 'rank' }, String(index + 1)),
    el('td', {}, [el('div', { class: 'strong' }, row.participant ?? '—'), who ? el('div', { class: 'sub' }, who) : null]),
    el('td', {}, row.code ? el('code', {}, row.code) : '—'),
    el('td', { class: 'num', 'data-col': 'clicks' }, formatCount(row.clicks)),
    el('td', { class: 'num', 'data-col': 'visitors' }, formatCount(row.visitors)),
    el('td', { class: 'num', 'data-col': 'signups' }, formatCount(row.signups)),
    el('td', { class: 'num', 'data-col': 'purchases' }, formatCount(row.purchases)),
    el('td', { class: 'num', 'data-col': 'revenue' }, formatMoneyMap(row.revenue)),
    el('td', { class: 'num', 'data-col': 'conversionRate' }, formatPercent(row.conversionRate)),
    el('td', { class: 'num' }, formatMoneyMap(row.rewards?.pending)),
    el('td', { class: 'num' }, formatMoneyMap(row.rewards?.approved)),
    el('td', { class: 'num' }, formatMoneyMap(row.rewards?.paid)),
  ]);
}

export function leaderboardView(ctx: ViewContext): View {
  const headers = [...byId('leaderboard-table').querySelectorAll<HTMLTableCellElement>('th[data-sort]')];
  let sort: LeaderboardSort = 'clicks';
  const ranked = byId('leaderboard-ranked');

  const table = pagedTable<ReferrerRow, number>({
    body: byId<HTMLTableSectionElement>('leaderboard-body'),
    empty: byId('leaderboard-empty'),
    more: byId<HTMLButtonElement>('leaderboard-more'),
    columns: 12,
    renderRow,
    onError: ctx.fail,
    async fetchPage(offset) {
      const { from, to } = ctx.range();
      const page = await ctx.api.get<LeaderboardPage>('/v1/reports/referrers', {
        from,
        to,
        sort,
        limit: PAGE_SIZE,
        offset: offset ?? 0,
      });
      // A large program's order for the last 7, 30 or 90 days is ranked every minute; its figures are live.
      if (!offset) {
        ranked.textContent = page.rankedAt ? `Order as of ${formatDateTime(page.rankedAt)}, figures live.` : '';
        ranked.hidden = !page.rankedAt;
      }
      return { data: page.data, next: page.nextOffset };
    },
  });

  function markSorted() {
    for (const header of headers) {
      if (header.dataset.sort === sort) header.setAttribute('aria-sort', 'descending');
      else header.removeAttribute('aria-sort');
    }
  }

  function sortBy(value: string | undefined) {
    if (!value || !SORTS.includes(value as LeaderboardSort) || value === sort) return;
    sort = value as LeaderboardSort;
    markSorted();
    void table.reload();
  }

  for (const header of headers) {
    header.addEventListener('click', () => sortBy(header.dataset.sort));
    header.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        sortBy(header.dataset.sort);
      }
    });
  }
  markSorted();

  return { load: table.reload, reset: table.reset };
}
