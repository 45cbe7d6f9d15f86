/**
 * The payouts tab's confirmation: a modal that says what is about to happen (how
 * many, how much) and, when the action needs one, asks for a line of text (a payment
 * reference, a reason). Nothing is sent until the person confirms; the confirm
 * button waits for the text.
 */
import { append, byId, type Child, show } from './dom.ts';

export interface Confirmation {
  title: string;
  summary: Child[];
  /** The button's words, e.g. "Mark 2 paid". */
  confirm: string;
  danger?: boolean;
  /** A required line of text, e.g. the payment reference. */
  ask?: { label: string; placeholder: string; hint: string };
}

/** Resolves to the text typed ('' when nothing was asked), or null when cancelled. */
export type Confirm = (confirmation: Confirmation) => Promise<string | null>;

export function confirmDialog(): Confirm {
  const dialog = byId<HTMLDialogElement>('payout-dialog');
  const form = byId<HTMLFormElement>('payout-dialog-form');
  const title = byId('payout-dialog-title');
  const summary = byId('payout-dialog-summary');
  const field = byId('payout-dialog-field');
  const label = byId('payout-dialog-label');
  const input = byId<HTMLInputElement>('payout-dialog-input');
  const hint = byId('payout-dialog-hint');
  const confirm = byId<HTMLButtonElement>('payout-dialog-confirm');
  let settle: ((answer: string | null) => void) | null = null;
  let asking = false;

  const finish = (answer: string | null) => {
    const done = settle;
    settle = null;
    if (dialog.open) dialog.close();
    done?.(answer);
  };
  const update = () => {
    confirm.disabled = asking && !input.value.trim();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!confirm.disabled) finish(asking ? input.value.trim() : '');
  });
  byId('payout-dialog-cancel').addEventListener('click', () => finish(null));
  // Escape, or anything else that closes it, is a cancel.
  dialog.addEventListener('close', () => finish(null));
  input.addEventListener('input', update);

  return (confirmation) => {
    finish(null);
    title.textContent = confirmation.title;
    summary.replaceChildren();
    append(summary, confirmation.summary);
    asking = Boolean(confirmation.ask);
    show(field, asking);
    label.textContent = confirmation.ask?.label ?? '';
    input.placeholder = confirmation.ask?.placeholder ?? '';
    hint.textContent = confirmation.ask?.hint ?? '';
    input.value = '';
    confirm.textContent = confirmation.confirm;
    confirm.className = `btn ${confirmation.danger ? 'btn-danger' : 'btn-primary'}`;
    update();
    dialog.showModal();
    (asking ? input : confirm).focus();
    return new Promise((resolve) => {
      settle = resolve;
    });
  };
}
