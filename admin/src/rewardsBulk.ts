/**
 * Bulk approve / pay in the rewards queue: rows are selected with their checkbox,
 * then a confirmation says how many and how much (per kind and currency) before
 * anything is sent. Paying asks for the payment reference (recorded with each reward
 * as "paid: <reference>"); approving rewards still on hold asks for one reason for
 * all of them, or skips them and says so. Each reward is one POST, one at a time.
 */
import { ApiError } from './api.ts';
import type { ViewContext } from './context.ts';
import { byId, el, show } from './dom.ts';
import { formatCount, formatDateTime, formatMoneyMap } from './format.ts';
import type { MoneyByCurrency, Reward } from './types.ts';

export type TransitionBody = { force: true; reason: string } | { reason: string };
type BulkAction = 'approve' | 'pay';

/** Which rewards each bulk action applies to. */
const APPLIES: Record<BulkAction, Reward['status']> = { approve: 'pending', pay: 'approved' };

/** Still on hold: approving it now is an override that needs a reason. */
export const isOnHold = (reward: Reward): boolean => Date.parse(reward.availableAt) > Date.now();

/** "Cash $12.40 · €3.00; Credit $5.00; 1 coupon": kinds never summed together. */
export function kindTotals(rewards: Reward[]): string {
  const sums: Record<'cash' | 'credit', MoneyByCurrency> = { cash: {}, credit: {} };
  let coupons = 0;
  for (const reward of rewards) {
    if (reward.kind === 'coupon') coupons++;
    else if (reward.currency) sums[reward.kind][reward.currency] = (sums[reward.kind][reward.currency] ?? 0) + reward.amount;
  }
  const parts: string[] = [];
  if (Object.keys(sums.cash).length) parts.push(`Cash ${formatMoneyMap(sums.cash)}`);
  if (Object.keys(sums.credit).length) parts.push(`Store credit ${formatMoneyMap(sums.credit)}`);
  if (coupons) parts.push(`${formatCount(coupons)} ${coupons === 1 ? 'coupon' : 'coupons'}`);
  return parts.join('; ') || 'nothing to add up';
}

export interface BulkActions {
  /** The row's selection checkbox (none for a reward no bulk action applies to). */
  checkbox: (reward: Reward) => HTMLInputElement | null;
  /** Drops a reward from the selection (it changed on its own). */
  forget: (id: string) => void;
  clear: () => void;
}

export function bulkActions(ctx: ViewContext, options: { onDone: () => Promise<void> }): BulkActions {
  const bar = byId('rewards-bulk');
  const count = byId('rewards-selected');
  const approve = byId<HTMLButtonElement>('rewards-bulk-approve');
  const pay = byId<HTMLButtonElement>('rewards-bulk-pay');
  const selectAll = byId<HTMLInputElement>('rewards-select-all');
  const dialog = byId<HTMLDialogElement>('bulk-dialog');
  const form = byId<HTMLFormElement>('bulk-form');
  const title = byId('bulk-title');
  const summary = byId('bulk-summary');
  const hold = byId('bulk-hold');
  const holdText = byId('bulk-hold-text');
  const reason = byId<HTMLInputElement>('bulk-reason');
  const payFields = byId('bulk-pay-fields');
  const reference = byId<HTMLInputElement>('bulk-reference');
  const confirm = byId<HTMLButtonElement>('bulk-confirm');
  const selected = new Map<string, Reward>();
  const boxes = new Map<string, HTMLInputElement>();
  let pending: { action: BulkAction; rewards: Reward[] } | null = null;
  let running = false;

  const chosen = (action: BulkAction) => [...selected.values()].filter((reward) => reward.status === APPLIES[action]);

  function refresh() {
    const n = selected.size;
    count.textContent = `${formatCount(n)} selected`;
    approve.disabled = running || !chosen('approve').length;
    pay.disabled = running || !chosen('pay').length;
    show(bar, n > 0 || running);
    const all = [...boxes.values()].filter((box) => box.isConnected);
    selectAll.disabled = all.length === 0;
    selectAll.checked = all.length > 0 && all.every((box) => box.checked);
    selectAll.indeterminate = n > 0 && !selectAll.checked;
  }

  function setSelected(reward: Reward, on: boolean) {
    if (on) selected.set(reward.id, reward);
    else selected.delete(reward.id);
    const box = boxes.get(reward.id);
    if (box) box.checked = on;
  }

  /** The confirm button says what will happen, and waits for what is missing. */
  function updateConfirm() {
    if (!pending) return;
    const { action, rewards } = pending;
    if (action === 'pay') {
      confirm.textContent = `Mark ${formatCount(rewards.length)} paid`;
      confirm.disabled = !reference.value.trim();
      return;
    }
    const held = rewards.filter(isOnHold).length;
    const skipping = reason.value.trim() ? 0 : held;
    const going = rewards.length - skipping;
    confirm.textContent = skipping
      ? going
        ? `Approve ${formatCount(going)}, skip ${formatCount(skipping)} on hold`
        : 'Give a reason to approve them'
      : `Approve ${formatCount(going)}`;
    confirm.disabled = going === 0;
  }

  function open(action: BulkAction) {
    const rewards = chosen(action);
    if (!rewards.length) return;
    pending = { action, rewards };
    const verb = action === 'approve' ? 'Approve' : 'Mark as paid';
    title.textContent = `${verb} ${formatCount(rewards.length)} ${rewards.length === 1 ? 'reward' : 'rewards'}?`;
    const people = new Set(rewards.map((reward) => reward.participant)).size;
    const others = selected.size - rewards.length;
    summary.replaceChildren(
      el('p', { 'data-testid': 'bulk-total' }, [el('strong', {}, 'Total: '), kindTotals(rewards)]),
      el('p', { class: 'muted' }, `For ${formatCount(people)} ${people === 1 ? 'participant' : 'participants'}.`),
    );
    if (others > 0) {
      const which = others === 1 ? 'reward is' : 'rewards are';
      summary.append(
        el('p', { class: 'muted' }, `${formatCount(others)} other selected ${which} not ${APPLIES[action]} and stay as they are.`),
      );
    }
    const held = action === 'approve' ? rewards.filter(isOnHold) : [];
    const until = held.map((reward) => Date.parse(reward.availableAt)).sort((a, b) => b - a)[0];
    holdText.textContent = held.length
      ? `${formatCount(held.length)} of them ${held.length === 1 ? 'is' : 'are'} still on hold (until ${formatDateTime(new Date(until ?? Date.now()).toISOString())} at the latest). Give one reason for all of them, or they are skipped.`
      : '';
    show(hold, held.length > 0);
    show(payFields, action === 'pay');
    reason.value = '';
    reference.value = '';
    updateConfirm();
    dialog.showModal();
    (action === 'pay' ? reference : held.length ? reason : confirm).focus();
  }

  async function run(action: BulkAction, rewards: Reward[], body: (reward: Reward) => TransitionBody | undefined | null) {
    running = true;
    let done = 0;
    let skipped = 0;
    const failures: string[] = [];
    for (const reward of rewards) {
      const payload = body(reward);
      if (payload === null) {
        skipped++;
        continue;
      }
      count.textContent = `${action === 'approve' ? 'Approving' : 'Marking paid'} ${formatCount(done + failures.length + 1)} of ${formatCount(rewards.length - skipped)}…`;
      try {
        await ctx.api.post(`/v1/rewards/${encodeURIComponent(reward.id)}/${action}`, payload);
        done++;
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) break;
        failures.push(`${reward.participant}: ${error instanceof ApiError ? error.message : 'failed'}`);
      }
    }
    running = false;
    selected.clear();
    const parts = [`${action === 'approve' ? 'Approved' : 'Marked paid'} ${formatCount(done)} ${done === 1 ? 'reward' : 'rewards'}.`];
    if (skipped) parts.push(`Skipped ${formatCount(skipped)} still on hold (no reason given).`);
    if (failures.length)
      parts.push(`${formatCount(failures.length)} failed: ${failures.slice(0, 3).join('; ')}${failures.length > 3 ? '; …' : ''}`);
    await options.onDone();
    refresh();
    ctx.notify(parts.join(' '), failures.length ? 'error' : 'info');
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!pending || confirm.disabled) return;
    const { action, rewards } = pending;
    pending = null;
    dialog.close();
    if (action === 'pay') {
      const ref = reference.value.trim();
      void run('pay', rewards, () => ({ reason: `paid: ${ref}` }));
    } else {
      const why = reason.value.trim();
      void run('approve', rewards, (reward) => (isOnHold(reward) ? (why ? { force: true, reason: why } : null) : undefined));
    }
  });
  byId('bulk-cancel').addEventListener('click', () => {
    pending = null;
    dialog.close();
  });
  dialog.addEventListener('close', () => {
    pending = null;
  });
  reason.addEventListener('input', updateConfirm);
  reference.addEventListener('input', updateConfirm);
  approve.addEventListener('click', () => open('approve'));
  pay.addEventListener('click', () => open('pay'));
  byId('rewards-bulk-clear').addEventListener('click', () => {
    for (const reward of [...selected.values()]) setSelected(reward, false);
    refresh();
  });
  selectAll.addEventListener('change', () => {
    for (const [id, box] of boxes) {
      const reward = rewardsShown.get(id);
      if (box.isConnected && reward) setSelected(reward, selectAll.checked);
    }
    refresh();
  });

  /** The rewards whose checkbox is on the page, by id. */
  const rewardsShown = new Map<string, Reward>();

  return {
    checkbox(reward) {
      if (!Object.values(APPLIES).includes(reward.status) || reward.reverses) {
        boxes.delete(reward.id);
        rewardsShown.delete(reward.id);
        return null;
      }
      const box = el('input', {
        type: 'checkbox',
        'data-testid': 'reward-select',
        'data-reward-id': reward.id,
        'aria-label': `Select the reward for ${reward.participant}`,
      });
      box.checked = selected.has(reward.id);
      box.addEventListener('change', () => {
        setSelected(reward, box.checked);
        refresh();
      });
      boxes.set(reward.id, box);
      rewardsShown.set(reward.id, reward);
      if (selected.has(reward.id)) selected.set(reward.id, reward);
      queueMicrotask(refresh);
      return box;
    },
    forget(id) {
      selected.delete(id);
      boxes.delete(id);
      rewardsShown.delete(id);
      refresh();
    },
    clear() {
      selected.clear();
      boxes.clear();
      rewardsShown.clear();
      refresh();
    },
  };
}
