/**
 * Payouts: a preview of the next run (a dry run: the items per referrer and currency,
 * and who is left out and why), "Create payout" after a confirmation with the count
 * and the totals per currency, the runs made so far, newest first, and one run opened
 * (payoutRun.ts). The API's refusals (422 nothing_to_pay, 409 …) show as messages.
 */
import { badge } from './badges.ts';
import { confirmDialog } from './confirmDialog.ts';
import type { View, ViewContext } from './context.ts';
import { append, byId, el, show, showMessage } from './dom.ts';
import { formatCount, formatDateTime, formatMoney, formatMoneyMap } from './format.ts';
import { payoutRunPanel } from './payoutRun.ts';
import { destinationOf, errorLine, methodLabel, plural, shortId, skipReason, statusCounts, totalsOf } from './payoutText.ts';
import { pagedTable } from './table.ts';
import type { CursorPage, MoneyByCurrency, Payout, PayoutPreview, Program } from './types.ts';

const PAGE_SIZE = 20;

export function payoutsView(ctx: ViewContext): View {
  const previewButton = byId<HTMLButtonElement>('payouts-preview');
  const createButton = byId<HTMLButtonElement>('payouts-create');
  const rules = byId('payouts-rules');
  const previewMessage = byId('payouts-preview-message');
  const summary = byId('payouts-preview-summary');
  const itemsWrap = byId('payouts-preview-items');
  const itemsBody = byId('payouts-preview-body');
  const skippedWrap = byId('payouts-skipped');
  const skippedBody = byId('payouts-skipped-body');
  const confirm = confirmDialog();
  const run = payoutRunPanel(ctx, confirm, () => {
    void Promise.all([runs.reload(), preview()]);
  });
  let minimum: MoneyByCurrency = {};
  let latest: PayoutPreview | null = null;
  let generation = 0;

  function describeRules(program: Program) {
    const payouts = program.settings.payouts;
    minimum = payouts?.minimum ?? {};
    const floors = Object.entries(minimum)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([currency, amount]) => formatMoney(amount, currency));
    const parts = ['Approved cash rewards whose hold has ended, per referrer and currency, less clawbacks.'];
    parts.push(floors.length ? `Minimum per payout: ${floors.join(' · ')}.` : 'No minimum is set (settings.payouts.minimum).');
    if (payouts?.method) parts.push(`Referrers without details of their own are paid by ${methodLabel(payouts.method)}.`);
    parts.push('Nothing is written until you create the payout.');
    rules.textContent = parts.join(' ');
  }

  function showPreview(result: PayoutPreview) {
    latest = result;
    const items = result.items;
    const people = new Set(items.map((item) => item.participant)).size;
    summary.dataset.items = String(items.length);
    summary.dataset.skipped = String(result.skipped.length);
    summary.replaceChildren();
    append(summary, [
      items.length
        ? el('span', {}, [
            `${plural(items.length, 'item')} for ${plural(people, 'referrer')}: `,
            el('strong', { 'data-testid': 'payouts-preview-total' }, formatMoneyMap(totalsOf(items))),
            '.',
          ])
        : el('span', { 'data-testid': 'payouts-preview-nothing' }, 'Nothing to pay now.'),
      result.skipped.length ? el('span', { class: 'muted' }, ` ${formatCount(result.skipped.length)} left out, listed below.`) : null,
    ]);
    itemsBody.replaceChildren(
      ...[...items]
        .sort((a, b) => a.participant.localeCompare(b.participant) || a.currency.localeCompare(b.currency))
        .map((item) =>
          el('tr', { 'data-testid': 'payouts-preview-item', 'data-participant': item.participant, 'data-currency': item.currency }, [
            el('td', { class: 'strong cell-title', 'data-label': 'Referrer' }, item.participant),
            el('td', { 'data-label': 'Method', 'data-testid': 'preview-method' }, methodLabel(item.method)),
            el('td', { class: 'wrap-anywhere', 'data-label': 'Pays to' }, destinationOf(item)),
            el('td', { class: 'num', 'data-label': 'Rewards' }, formatCount(item.rewards.length)),
            el(
              'td',
              { class: 'num strong', 'data-label': 'Amount', 'data-testid': 'preview-amount' },
              formatMoney(item.amount, item.currency),
            ),
          ]),
        ),
    );
    skippedBody.replaceChildren(
      ...result.skipped.map((skipped) =>
        el('tr', { 'data-testid': 'payouts-skipped-item', 'data-participant': skipped.participant, 'data-reason': skipped.reason }, [
          el('td', { class: 'strong cell-title', 'data-label': 'Referrer' }, skipped.participant),
          el(
            'td',
            { class: 'num', 'data-label': 'Amount', 'data-testid': 'skipped-amount' },
            formatMoney(skipped.amount, skipped.currency),
          ),
          el('td', { 'data-label': 'Why', 'data-testid': 'skipped-reason' }, skipReason(skipped, minimum)),
        ]),
      ),
    );
    show(itemsWrap, items.length > 0);
    show(skippedWrap, result.skipped.length > 0);
    createButton.disabled = items.length === 0;
  }

  async function preview() {
    const mine = ++generation;
    previewButton.disabled = true;
    createButton.disabled = true;
    try {
      const [result, { program }] = await Promise.all([
        ctx.api.post<PayoutPreview>('/v1/payouts', { dryRun: true }),
        ctx.api.get<{ program: Program }>('/v1/program'),
      ]);
      if (mine !== generation) return;
      describeRules(program);
      showMessage(previewMessage, '');
      showPreview(result);
    } catch (error) {
      if (mine !== generation) return;
      latest = null;
      summary.replaceChildren();
      show(itemsWrap, false);
      show(skippedWrap, false);
      showMessage(previewMessage, `The preview could not be made: ${errorLine(error) ?? 'sign in again.'}`, 'error');
    } finally {
      if (mine === generation) previewButton.disabled = false;
    }
  }

  async function create() {
    const planned = latest;
    if (!planned?.items.length) return;
    const people = new Set(planned.items.map((item) => item.participant)).size;
    const totals = totalsOf(planned.items);
    const answer = await confirm({
      title: `Create a payout of ${plural(planned.items.length, 'item')}?`,
      summary: [
        el('ul', { class: 'totals-list', 'data-testid': 'payout-dialog-totals' }, [
          ...Object.entries(totals)
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([currency, amount]) => {
              const n = planned.items.filter((item) => item.currency === currency).length;
              return el('li', { 'data-currency': currency }, [el('strong', {}, formatMoney(amount, currency)), ` in ${plural(n, 'item')}`]);
            }),
        ]),
        el('p', { class: 'muted' }, `For ${plural(people, 'referrer')}. Their rewards stay approved until you mark the items paid.`),
        planned.skipped.length
          ? el('p', { class: 'muted' }, `Left out for a later run: ${formatCount(planned.skipped.length)} (listed in the preview).`)
          : null,
      ],
      confirm: 'Create payout',
    });
    if (answer === null) return;
    createButton.disabled = true;
    try {
      // Stripe Connect items are sent at once; those Stripe refused come back failed, listed here.
      const made = await ctx.api.post<Payout & { transferErrors?: Array<{ item: string; error: string }> }>('/v1/payouts', {});
      const refused = made.transferErrors ?? [];
      run.present(made);
      await Promise.all([runs.reload(), preview()]);
      // After the new preview, which clears the panel's message.
      const created = `Created payout ${shortId(made.id)}: ${plural(made.items.length, 'item')}, ${formatMoneyMap(made.totals)}.`;
      if (refused.length) {
        const why = refused.map((failure) => failure.error).join('; ');
        showMessage(previewMessage, `${created} Stripe refused ${plural(refused.length, 'transfer')}: ${why}`, 'error');
      } else {
        showMessage(previewMessage, `${created} Download its files below.`);
      }
      byId('payout-run').scrollIntoView({ block: 'start', behavior: 'smooth' });
    } catch (error) {
      const line = errorLine(error);
      if (!line) return;
      // What changed meanwhile (another run took these rewards): the list and a new preview, then why.
      await Promise.all([runs.reload(), preview()]);
      showMessage(previewMessage, `The payout was not created: ${line}`, 'error');
    }
  }

  function runRow(payout: Payout): HTMLTableRowElement {
    const open = el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'payout-open' }, 'Open');
    open.addEventListener('click', async () => {
      await run.open(payout.id);
      markOpen();
      byId('payout-run').scrollIntoView({ block: 'start', behavior: 'smooth' });
    });
    return el('tr', { 'data-testid': 'payout-row', 'data-payout-id': payout.id, 'data-status': payout.status }, [
      el('td', { class: 'nowrap', 'data-label': 'Created' }, formatDateTime(payout.createdAt)),
      el('td', { 'data-label': 'Run' }, el('code', {}, shortId(payout.id))),
      el('td', { 'data-label': 'Status', 'data-testid': 'payout-row-status' }, badge(payout.status)),
      el('td', { 'data-label': 'Items', 'data-testid': 'payout-row-items' }, statusCounts(payout.items)),
      el('td', { class: 'num strong', 'data-label': 'Total', 'data-testid': 'payout-row-total' }, formatMoneyMap(payout.totals)),
      el('td', { class: 'actions' }, open),
    ]);
  }

  /** Marks the row of the run shown below the preview. */
  function markOpen() {
    const id = run.current();
    for (const row of byId('payouts-body').querySelectorAll<HTMLElement>('tr[data-payout-id]')) {
      row.classList.toggle('row-open', row.dataset.payoutId === id);
    }
  }

  const runs = pagedTable<Payout, string>({
    body: byId<HTMLTableSectionElement>('payouts-body'),
    empty: byId('payouts-empty'),
    more: byId<HTMLButtonElement>('payouts-more'),
    columns: 6,
    renderRow: (payout) => {
      const row = runRow(payout);
      if (payout.id === run.current()) row.classList.add('row-open');
      return row;
    },
    onError: ctx.fail,
    async fetchPage(cursor) {
      const page = await ctx.api.get<CursorPage<Payout>>('/v1/payouts', { limit: PAGE_SIZE, cursor });
      return { data: page.data, next: page.nextCursor };
    },
  });

  previewButton.addEventListener('click', () => void preview());
  createButton.addEventListener('click', () => void create());
  byId('payout-run-close').addEventListener('click', markOpen);

  return {
    async load() {
      const open = run.current();
      await Promise.all([preview(), runs.reload(), open ? run.open(open) : undefined]);
    },
    reset() {
      generation++;
      latest = null;
      summary.replaceChildren();
      itemsBody.replaceChildren();
      skippedBody.replaceChildren();
      show(itemsWrap, false);
      show(skippedWrap, false);
      showMessage(previewMessage, '');
      createButton.disabled = true;
      runs.reset();
      run.reset();
    },
  };
}
