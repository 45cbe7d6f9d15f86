/**
 * One payout run, opened from the list: its items (referrer, amount, method, status),
 * the files a provider takes for bulk payments (downloaded with the key in a header,
 * saved from a Blob), and recording the outcome: "Mark paid" with the payment
 * reference and "Mark failed" with a reason, for the selected pending items or, when
 * none is selected, all of them. A failed item's rewards go back to the next run.
 */
import { badge } from './badges.ts';
import type { Confirm } from './confirmDialog.ts';
import type { ViewContext } from './context.ts';
import { byId, el, show, showMessage } from './dom.ts';
import { saveBlob } from './exports.ts';
import { formatDateTime, formatMoney, formatMoneyMap } from './format.ts';
import { destinationOf, errorLine, methodLabel, payoutFiles, plural, shortId, statusCounts, totalsOf } from './payoutText.ts';
import type { Payout, PayoutItem } from './types.ts';

type Outcome = 'paid' | 'failed';

export interface PayoutRunPanel {
  /** Loads the run and shows it. */
  open: (id: string) => Promise<void>;
  /** Shows a run already at hand (just made, or just changed). */
  present: (payout: Payout) => void;
  /** The run shown, if any. */
  current: () => string | null;
  reset: () => void;
}

export function payoutRunPanel(ctx: ViewContext, confirm: Confirm, onChange: (payout: Payout) => void): PayoutRunPanel {
  const panel = byId('payout-run');
  const title = byId('payout-run-title');
  const facts = byId('payout-run-facts');
  const message = byId('payout-run-message');
  const fileList = byId('payout-files');
  const actions = byId('payout-run-actions');
  const count = byId('payout-selected');
  const markPaid = byId<HTMLButtonElement>('payout-mark-paid');
  const markFailed = byId<HTMLButtonElement>('payout-mark-failed');
  const clear = byId<HTMLButtonElement>('payout-clear');
  const selectAll = byId<HTMLInputElement>('payout-select-all');
  const body = byId<HTMLTableSectionElement>('payout-items-body');
  const selected = new Set<string>();
  let payout: Payout | null = null;
  let busy = false;
  let generation = 0;

  const pending = () => payout?.items.filter((item) => item.status === 'pending') ?? [];
  /** The items an action applies to: the selection, else every pending item. */
  const chosen = () => (selected.size ? pending().filter((item) => selected.has(item.id)) : pending());

  function refresh() {
    const open = pending();
    const n = selected.size;
    count.textContent = n
      ? `${plural(n, 'item')} selected`
      : open.length
        ? `${plural(open.length, 'item')} to pay`
        : 'Every item is settled';
    markPaid.textContent = n ? `Mark ${n} paid…` : 'Mark all paid…';
    markFailed.textContent = n ? `Mark ${n} failed…` : 'Mark all failed…';
    for (const button of [markPaid, markFailed]) {
      show(button, open.length > 0);
      button.disabled = busy || chosen().length === 0;
    }
    show(clear, n > 0);
    selectAll.disabled = open.length === 0;
    selectAll.checked = open.length > 0 && n === open.length;
    selectAll.indeterminate = n > 0 && n < open.length;
    actions.dataset.settled = String(open.length === 0);
  }

  function itemRow(item: PayoutItem): HTMLTableRowElement {
    let box: HTMLInputElement | null = null;
    if (item.status === 'pending') {
      box = el('input', { type: 'checkbox', 'data-testid': 'payout-item-select', 'aria-label': `Select ${item.participant}’s item` });
      box.checked = selected.has(item.id);
      box.addEventListener('change', () => {
        if (box?.checked) selected.add(item.id);
        else selected.delete(item.id);
        refresh();
      });
    }
    const note = item.failure ?? item.reference ?? item.transferId ?? '';
    return el('tr', { 'data-testid': 'payout-item', 'data-item-id': item.id, 'data-status': item.status }, [
      el('td', { class: 'select-col' }, box),
      el('td', { class: 'strong cell-title', 'data-label': 'Referrer', 'data-testid': 'payout-item-participant' }, item.participant),
      el('td', { 'data-label': 'Method' }, methodLabel(item.method)),
      el('td', { class: 'wrap-anywhere', 'data-label': 'Pays to' }, destinationOf(item)),
      el('td', { class: 'num', 'data-label': 'Amount', 'data-testid': 'payout-item-amount' }, formatMoney(item.amount, item.currency)),
      el('td', { 'data-label': 'Status', 'data-testid': 'payout-item-status' }, badge(item.status)),
      el(
        'td',
        { class: 'wrap-anywhere', 'data-label': item.failure ? 'Reason' : 'Reference', 'data-testid': 'payout-item-note' },
        note || '—',
      ),
    ]);
  }

  function present(run: Payout) {
    if (payout?.id !== run.id) {
      selected.clear();
      showMessage(message, '');
    }
    payout = run;
    for (const id of [...selected]) if (!run.items.some((item) => item.id === id && item.status === 'pending')) selected.delete(id);
    panel.dataset.payoutId = run.id;
    panel.dataset.status = run.status;
    title.textContent = `Payout ${shortId(run.id)}`;
    const fact = (term: string, value: Node | string, testid: string) => [el('dt', {}, term), el('dd', { 'data-testid': testid }, value)];
    facts.replaceChildren(
      ...fact('Status', badge(run.status), 'payout-run-status'),
      ...fact('Created', formatDateTime(run.createdAt), 'payout-run-created'),
      ...fact('Total', formatMoneyMap(run.totals), 'payout-run-total'),
      ...fact('Items', statusCounts(run.items), 'payout-run-items'),
    );
    fileList.replaceChildren(
      ...payoutFiles(run).map((file) => {
        const button = el('button', { type: 'button', class: 'btn btn-small', 'data-testid': file.testid }, file.label);
        button.addEventListener('click', () => void download(run, file.query, button));
        return button;
      }),
    );
    const byReferrer = [...run.items].sort((a, b) => a.participant.localeCompare(b.participant) || a.currency.localeCompare(b.currency));
    body.replaceChildren(...byReferrer.map(itemRow));
    show(panel, true);
    refresh();
  }

  async function download(run: Payout, query: string, button: HTMLButtonElement) {
    button.disabled = true;
    try {
      const { blob, filename } = await ctx.api.download(`/v1/payouts/${encodeURIComponent(run.id)}/export.csv?${query}`);
      const name = filename ?? `payout-${shortId(run.id)}.csv`;
      saveBlob(blob, name);
      showMessage(message, `Downloaded ${name}.`);
    } catch (error) {
      const line = errorLine(error);
      if (line) showMessage(message, line, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async function settle(outcome: Outcome) {
    if (!payout) return;
    const run = payout;
    const items = chosen();
    if (!items.length) return;
    const people = [...new Set(items.map((item) => item.participant))];
    const who = people.length > 4 ? `${people.slice(0, 4).join(', ')} and ${plural(people.length - 4, 'other')}` : people.join(', ');
    const text = await confirm({
      title: `Mark ${plural(items.length, 'item')} ${outcome}?`,
      summary: [
        el('p', { 'data-testid': 'payout-dialog-total' }, [el('strong', {}, 'Total: '), formatMoneyMap(totalsOf(items))]),
        el('p', { class: 'muted' }, `To ${who}.`),
        el(
          'p',
          { class: 'muted' },
          outcome === 'paid' ? 'Their rewards become paid, with this run’s id.' : 'Their rewards are freed and go into the next payout.',
        ),
      ],
      confirm: `Mark ${items.length} ${outcome}`,
      danger: outcome === 'failed',
      ask:
        outcome === 'paid'
          ? {
              label: 'Payment reference',
              placeholder: 'e.g. PayPal batch 7H2K4…',
              hint: 'From PayPal, Wise or your bank; recorded with each item.',
            }
          : { label: 'Why it failed', placeholder: 'e.g. PayPal account closed', hint: 'Recorded with each item, and shown to you here.' },
    });
    if (text === null || payout?.id !== run.id) return;
    busy = true;
    refresh();
    const ids = selected.size ? items.map((item) => item.id) : undefined;
    try {
      const answer = await ctx.api.post<Payout>(`/v1/payouts/${encodeURIComponent(run.id)}/${outcome}`, {
        ...(ids ? { items: ids } : {}),
        ...(outcome === 'paid' ? { reference: text } : { reason: text }),
      });
      selected.clear();
      busy = false;
      present(answer);
      const done = `Marked ${plural(items.length, 'item')} ${outcome}`;
      showMessage(
        message,
        outcome === 'paid' ? `${done} (reference: ${text}).` : `${done}: the rewards are free again, in the preview of the next payout.`,
      );
      onChange(answer);
    } catch (error) {
      busy = false;
      refresh();
      const line = errorLine(error);
      if (line) showMessage(message, line, 'error');
    }
  }

  markPaid.addEventListener('click', () => void settle('paid'));
  markFailed.addEventListener('click', () => void settle('failed'));
  clear.addEventListener('click', () => {
    selected.clear();
    if (payout) present(payout);
  });
  selectAll.addEventListener('change', () => {
    selected.clear();
    if (selectAll.checked) for (const item of pending()) selected.add(item.id);
    if (payout) present(payout);
  });
  byId('payout-run-close').addEventListener('click', () => reset());

  function reset() {
    generation++;
    payout = null;
    selected.clear();
    busy = false;
    body.replaceChildren();
    facts.replaceChildren();
    fileList.replaceChildren();
    showMessage(message, '');
    delete panel.dataset.payoutId;
    show(panel, false);
  }

  return {
    async open(id) {
      const mine = ++generation;
      try {
        const run = await ctx.api.get<Payout>(`/v1/payouts/${encodeURIComponent(id)}`);
        if (mine === generation) present(run);
      } catch (error) {
        ctx.fail(error);
      }
    },
    present(run) {
      generation++;
      present(run);
    },
    current: () => payout?.id ?? null,
    reset,
  };
}
