/**
 * Rewards queue: the ledger by status, with Approve / Revoke / Mark paid on each
 * row, a selection for doing the same to many at once (rewardsBulk.ts), and the
 * totals per participant for the same filter (rewardTotals.ts). A transition answers
 * the updated reward, which replaces its row.
 */
import type { ApiError } from './api.ts';
import { badge } from './badges.ts';
import type { View, ViewContext } from './context.ts';
import { byId, el } from './dom.ts';
import { formatDateTime, formatMoney } from './format.ts';
import { bulkActions, isOnHold, type TransitionBody } from './rewardsBulk.ts';
import { rewardTotalsPanel } from './rewardTotals.ts';
import { pagedTable } from './table.ts';
import type { CursorPage, Reward, RewardAction, RewardStatus } from './types.ts';

const PAGE_SIZE = 50;
/** How long a Revoke button waits for its confirming second click. */
const CONFIRM_MS = 4000;

const ACTIONS: Record<RewardStatus, Array<{ action: RewardAction; label: string; tone: string }>> = {
  pending: [
    { action: 'approve', label: 'Approve', tone: 'btn-primary' },
    { action: 'revoke', label: 'Revoke', tone: 'btn-danger' },
  ],
  approved: [
    { action: 'pay', label: 'Mark paid', tone: 'btn-primary' },
    { action: 'revoke', label: 'Revoke', tone: 'btn-danger' },
  ],
  paid: [],
  revoked: [],
};

function amountText(reward: Reward): string {
  if (reward.kind === 'coupon' && reward.coupon) return reward.coupon;
  return formatMoney(reward.amount, reward.currency);
}

/** What a person types before an action goes through: a reason to approve early, a reference to pay. */
interface Ask {
  placeholder: string;
  label: string;
  confirm: string;
  missing: string;
  testids: { input: string; confirm: string; cancel: string };
  body: (text: string) => TransitionBody;
}

const ASK_APPROVE = (reward: Reward): Ask => ({
  placeholder: `Why approve before ${formatDateTime(reward.availableAt)}?`,
  label: 'Reason for approving before the hold ends',
  confirm: 'Approve now',
  missing: 'Give a reason: this reward is still on hold.',
  testids: { input: 'reward-force-reason', confirm: 'reward-force-approve', cancel: 'reward-force-cancel' },
  body: (reason) => ({ force: true, reason }),
});

const ASK_PAY: Ask = {
  placeholder: 'Payment reference, e.g. PayPal 5TY12345',
  label: 'Payment reference',
  confirm: 'Mark paid',
  missing: 'Give the payment reference (a transfer or batch id), so the payment can be traced.',
  testids: { input: 'reward-pay-reference', confirm: 'reward-pay-confirm', cancel: 'reward-pay-cancel' },
  body: (reference) => ({ reason: `paid: ${reference}` }),
};

export function rewardsView(ctx: ViewContext): View {
  const status = byId<HTMLSelectElement>('rewards-status');
  const totals = rewardTotalsPanel(ctx, () => status.value);
  const bulk = bulkActions(ctx, {
    onDone: async () => {
      await Promise.all([table.reload(), totals.load()]);
    },
  });

  async function transition(row: HTMLTableRowElement, reward: Reward, action: RewardAction, body?: TransitionBody) {
    const buttons = [...row.querySelectorAll('button')];
    for (const button of buttons) button.disabled = true;
    try {
      const answer = await ctx.api.post<{ reward: Reward }>(`/v1/rewards/${encodeURIComponent(reward.id)}/${action}`, body);
      bulk.forget(reward.id);
      const updated = renderRow(answer.reward);
      updated.classList.add('row-updated');
      row.replaceWith(updated);
      ctx.notify(`Reward for ${answer.reward.participant} is now ${answer.reward.status}.`, 'info');
      void totals.load();
    } catch (error) {
      for (const button of buttons) button.disabled = false;
      if ((error as ApiError).status === 409) {
        ctx.notify(`${(error as ApiError).message}. Reload the queue to see its current state.`, 'error');
      } else {
        ctx.fail(error);
      }
    }
  }

  function actionButton(row: HTMLTableRowElement, reward: Reward, spec: (typeof ACTIONS)[RewardStatus][number]): HTMLButtonElement {
    const button = el(
      'button',
      { type: 'button', class: `btn btn-small ${spec.tone}`, 'data-action': spec.action, 'data-testid': `reward-${spec.action}` },
      spec.label,
    );
    let armed: ReturnType<typeof setTimeout> | undefined;
    button.addEventListener('click', () => {
      // Revoking cannot be undone: it asks for a second click.
      if (spec.action === 'revoke' && !armed) {
        button.textContent = 'Confirm revoke';
        armed = setTimeout(() => {
          armed = undefined;
          button.textContent = spec.label;
        }, CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      // Before its hold ends, a reward is approved only with a reason (recorded with the override).
      if (spec.action === 'approve' && isOnHold(reward)) ask(row, reward, 'approve', ASK_APPROVE(reward));
      // A payment is recorded with its reference.
      else if (spec.action === 'pay') ask(row, reward, 'pay', ASK_PAY);
      else void transition(row, reward, spec.action);
    });
    return button;
  }

  /** Replaces the row's buttons with a text field and a confirm button. */
  function ask(row: HTMLTableRowElement, reward: Reward, action: RewardAction, spec: Ask) {
    const cell = row.querySelector('td.actions');
    if (!cell) return;
    const input = el('input', {
      type: 'text',
      required: true,
      maxlength: 400,
      placeholder: spec.placeholder,
      'aria-label': spec.label,
      'data-testid': spec.testids.input,
    });
    const confirm = el('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': spec.testids.confirm }, spec.confirm);
    const cancel = el('button', { type: 'button', class: 'btn btn-small', 'data-testid': spec.testids.cancel }, 'Cancel');
    const go = () => {
      const text = input.value.trim();
      if (!text) {
        input.focus();
        ctx.notify(spec.missing, 'error');
        return;
      }
      void transition(row, reward, action, spec.body(text));
    };
    confirm.addEventListener('click', go);
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') go();
    });
    cancel.addEventListener('click', () => row.replaceWith(renderRow(reward)));
    cell.replaceChildren(el('div', { class: 'inline-ask' }, [input, confirm, cancel]));
    input.focus();
  }

  function renderRow(reward: Reward): HTMLTableRowElement {
    const row = el('tr', { 'data-testid': 'reward-row', 'data-reward-id': reward.id, 'data-status': reward.status });
    const actions = el('td', { class: 'actions' });
    for (const spec of ACTIONS[reward.status] ?? []) actions.append(actionButton(row, reward, spec));
    row.append(
      el('td', { class: 'select-col' }, bulk.checkbox(reward)),
      el('td', { class: 'nowrap' }, formatDateTime(reward.createdAt)),
      el('td', { class: 'strong' }, reward.participant),
      el('td', {}, el('code', {}, reward.rule)),
      el('td', {}, reward.kind),
      el('td', { class: `num${reward.amount < 0 ? ' negative' : ''}`, 'data-testid': 'reward-amount' }, amountText(reward)),
      el('td', { 'data-testid': 'reward-status' }, [
        badge(reward.status),
        reward.needsReview && reward.status === 'pending' ? badge('needs review', 'amber-outline') : null,
        reward.reverses ? badge('clawback', 'gray') : null,
      ]),
      el('td', { class: 'nowrap' }, formatDateTime(reward.availableAt)),
      el('td', { class: 'truncate', title: reward.eventId }, reward.eventId),
      actions,
    );
    return row;
  }

  const table = pagedTable<Reward, string>({
    body: byId<HTMLTableSectionElement>('rewards-body'),
    empty: byId('rewards-empty'),
    more: byId<HTMLButtonElement>('rewards-more'),
    columns: 10,
    renderRow,
    onError: ctx.fail,
    async fetchPage(cursor) {
      if (!cursor) bulk.clear();
      const page = await ctx.api.get<CursorPage<Reward>>('/v1/rewards', { status: status.value, limit: PAGE_SIZE, cursor });
      return { data: page.data, next: page.nextCursor };
    },
  });

  status.addEventListener('change', () => {
    void table.reload();
    void totals.load();
  });
  return {
    load: async () => {
      await Promise.all([table.reload(), totals.load()]);
    },
    reset() {
      table.reset();
      totals.reset();
      bulk.clear();
    },
  };
}
