/**
 * Rewards queue: the ledger by status, with Approve / Revoke / Mark paid on
 * each row. A transition answers the updated reward, which replaces its row.
 */
import type { ApiError } from './api.ts';
import { badge } from './badges.ts';
import type { View, ViewContext } from './context.ts';
import { byId, el } from './dom.ts';
import { formatDateTime, formatMoney } from './format.ts';
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

export function rewardsView(ctx: ViewContext): View {
  const status = byId<HTMLSelectElement>('rewards-status');

  async function transition(row: HTMLTableRowElement, reward: Reward, action: RewardAction, body?: { force: true; reason: string }) {
    const buttons = [...row.querySelectorAll('button')];
    for (const button of buttons) button.disabled = true;
    try {
      const answer = await ctx.api.post<{ reward: Reward }>(`/v1/rewards/${encodeURIComponent(reward.id)}/${action}`, body);
      const updated = renderRow(answer.reward);
      updated.classList.add('row-updated');
      row.replaceWith(updated);
      ctx.notify(`Reward for ${answer.reward.participant} is now ${answer.reward.status}.`, 'info');
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
      if (spec.action === 'approve' && Date.parse(reward.availableAt) > Date.now()) {
        askReason(row, reward);
        return;
      }
      void transition(row, reward, spec.action);
    });
    return button;
  }

  /** Replaces the row's buttons with a reason field: approving before the hold ends is an override. */
  function askReason(row: HTMLTableRowElement, reward: Reward) {
    const cell = row.querySelector('td.actions');
    if (!cell) return;
    const input = el('input', {
      type: 'text',
      required: true,
      maxlength: 500,
      placeholder: `Why approve before ${formatDateTime(reward.availableAt)}?`,
      'aria-label': 'Reason for approving before the hold ends',
      'data-testid': 'reward-force-reason',
    });
    const confirm = el(
      'button',
      { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': 'reward-force-approve' },
      'Approve now',
    );
    const cancel = el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'reward-force-cancel' }, 'Cancel');
    confirm.addEventListener('click', () => {
      const reason = input.value.trim();
      if (!reason) {
        input.focus();
        ctx.notify('Give a reason: this reward is still on hold.', 'error');
        return;
      }
      void transition(row, reward, 'approve', { force: true, reason });
    });
    cancel.addEventListener('click', () => row.replaceWith(renderRow(reward)));
    cell.replaceChildren(el('div', { class: 'force-approve' }, [input, confirm, cancel]));
    input.focus();
  }

  function renderRow(reward: Reward): HTMLTableRowElement {
    const row = el('tr', { 'data-testid': 'reward-row', 'data-reward-id': reward.id, 'data-status': reward.status });
    const actions = el('td', { class: 'actions' });
    for (const spec of ACTIONS[reward.status] ?? []) actions.append(actionButton(row, reward, spec));
    row.append(
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
    columns: 9,
    renderRow,
    onError: ctx.fail,
    async fetchPage(cursor) {
      const page = await ctx.api.get<CursorPage<Reward>>('/v1/rewards', { status: status.value, limit: PAGE_SIZE, cursor });
      return { data: page.data, next: page.nextCursor };
    },
  });

  status.addEventListener('change', () => void table.reload());
  return { load: table.reload, reset: table.reset };
}
