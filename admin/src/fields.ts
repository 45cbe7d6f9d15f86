/**
 * Form fields for the settings form: a label, the input, a hint, and a slot for the
 * server's message about that field (`data-error-for` holds the field's dotted path,
 * as the API names it in `error.fields`). Money is typed in integer minor units, so
 * every amount input says so and shows what it means as it is typed ("= $49.00").
 */
import { el } from './dom.ts';
import { formatCount, formatMoney, minorDigits } from './format.ts';

export interface FieldOptions {
  /** The field's path in the settings, e.g. `rewardRules.0.reward.amount`. */
  path: string;
  hint?: string;
  testid?: string;
  /** Extra class on the wrapper (e.g. `field-wide`). */
  wide?: boolean;
}

/** A labelled field with its hint and error slot. */
export function field(label: string, input: HTMLElement, options: FieldOptions, extra?: HTMLElement): HTMLElement {
  const id = `f-${options.path.replace(/[^A-Za-z0-9_-]/g, '-')}`;
  input.id = id;
  if (options.testid) input.dataset.testid = options.testid;
  input.dataset.path = options.path;
  const error = el('p', {
    class: 'field-error',
    'data-error-for': options.path,
    'data-testid': 'field-error',
    role: 'alert',
    hidden: true,
  });
  return el('div', { class: `field${options.wide ? ' field-wide' : ''}`, 'data-field': options.path }, [
    el('label', { for: id }, label),
    extra ? el('div', { class: 'field-row' }, [input, extra]) : input,
    options.hint ? el('p', { class: 'hint' }, options.hint) : null,
    error,
  ]);
}

/** A checkbox with its label on the right. */
export function checkField(label: string, input: HTMLInputElement, options: FieldOptions): HTMLElement {
  input.id = `f-${options.path.replace(/[^A-Za-z0-9_-]/g, '-')}`;
  if (options.testid) input.dataset.testid = options.testid;
  input.dataset.path = options.path;
  return el('div', { class: 'field field-check', 'data-field': options.path }, [
    el('label', { for: input.id, class: 'check' }, [input, ` ${label}`]),
    options.hint ? el('p', { class: 'hint' }, options.hint) : null,
    el('p', { class: 'field-error', 'data-error-for': options.path, 'data-testid': 'field-error', role: 'alert', hidden: true }),
  ]);
}

export const textInput = (value: string | undefined, attrs: Record<string, string | number | boolean> = {}) => {
  const input = el('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', ...attrs });
  input.value = value ?? '';
  return input;
};

export const numberInput = (value: number | undefined, attrs: Record<string, string | number | boolean> = {}) => {
  const input = el('input', { type: 'number', step: 1, inputmode: 'numeric', ...attrs });
  input.value = value === undefined ? '' : String(value);
  return input;
};

export function select(options: Array<[value: string, label: string]>, value: string | undefined): HTMLSelectElement {
  const node = el(
    'select',
    {},
    options.map(([v, label]) => el('option', { value: v }, label)),
  );
  node.value = value ?? options[0]?.[0] ?? '';
  return node;
}

/** The number typed, undefined when empty; what is not a number goes to the server as typed, to be refused there. */
export function readNumber(input: HTMLInputElement): number | string | undefined {
  const text = input.value.trim();
  if (!text) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : text;
}

/**
 * What an amount in minor units means, beside its input: "= $49.00". `currency` gives
 * the currency it is in: a code, `'purchase'` for the purchase's own ("= 49.00 in the
 * purchase's currency"), or null when none is set yet. Updated as either changes.
 */
export function minorUnitsHint(input: HTMLInputElement, currency: () => string | 'purchase' | null, testid?: string): HTMLElement {
  const hint = el('span', { class: 'money-hint', 'aria-live': 'polite', 'data-testid': testid });
  const update = () => {
    const value = Number(input.value);
    if (!input.value.trim() || !Number.isFinite(value)) {
      hint.textContent = '';
      return;
    }
    const given = currency();
    const code = given === 'purchase' ? null : given;
    let text: string;
    try {
      if (code) text = formatMoney(value, code);
      else text = `${(value / 100).toFixed(2)} ${given === 'purchase' ? "in the purchase's currency" : '(set a currency)'}`;
    } catch {
      text = formatCount(value);
    }
    if (code && !Number.isInteger(value)) text += ' (not a whole number of minor units)';
    hint.textContent = `= ${text}`;
    hint.dataset.currency = code ?? '';
    if (code) hint.dataset.digits = String(minorDigits(code));
  };
  input.addEventListener('input', update);
  update();
  return Object.assign(hint, { refresh: update });
}

/** Calls `refresh` on a hint built by minorUnitsHint. */
export const refreshHint = (hint: HTMLElement) => (hint as HTMLElement & { refresh?: () => void }).refresh?.();

/** Writes the API's field messages into the slots of the fields they name; returns those without a slot. */
export function placeFieldErrors(root: HTMLElement, fields: Record<string, string>): Array<[string, string]> {
  for (const slot of root.querySelectorAll<HTMLElement>('[data-error-for]')) {
    slot.textContent = '';
    slot.hidden = true;
    slot.closest('.field')?.classList.remove('field-invalid');
  }
  const leftover: Array<[string, string]> = [];
  for (const [path, message] of Object.entries(fields)) {
    // The field itself, else the nearest enclosing one (`rewardRules.0.when` → the rule's when fields).
    const parts = path.split('.');
    let slot: HTMLElement | null = null;
    let sub = '';
    for (let n = parts.length; n > 0; n--) {
      slot = root.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(parts.slice(0, n).join('.'))}"]`);
      if (slot) {
        sub = parts.slice(n).join('.');
        break;
      }
    }
    if (!slot) {
      leftover.push([path, message]);
      continue;
    }
    const text = sub ? `${sub}: ${message}` : message;
    slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
    slot.hidden = false;
    slot.closest('.field')?.classList.add('field-invalid');
  }
  return leftover;
}
