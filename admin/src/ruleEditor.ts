/**
 * Reward rules as a form: a card per rule with every option of the rule shape
 * (DESIGN, "Reward rules"), added, edited and removed in place. Fields the form does
 * not know (a newer collector's) are kept as they were. Field paths follow the API's
 * (`rewardRules.0.reward.amount`), so its messages land next to the right input.
 */
import { el } from './dom.ts';
import { checkField, field, minorUnitsHint, numberInput, readNumber, refreshHint, select, textInput } from './fields.ts';

type Json = Record<string, unknown>;
type ValueType = 'amount' | 'percent' | 'none';

export interface RuleEditor {
  element: HTMLElement;
  /** The rules as typed (not validated: the server says what is wrong, field by field). */
  read: () => Json[];
  set: (rules: unknown[]) => void;
}

const asObject = (value: unknown): Json => (value && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {});
const str = (value: unknown) => (typeof value === 'string' ? value : undefined);
const num = (value: unknown) => (typeof value === 'number' ? value : undefined);

/** A fresh rule: 10% of each purchase to the referrer, in cash. */
const NEW_RULE = (index: number): Json => ({
  id: `rule-${index + 1}`,
  on: 'purchase',
  to: 'referrer',
  reward: { kind: 'cash', percent: 10 },
});

interface Card {
  element: HTMLElement;
  read: () => Json;
}

function ruleCard(rule: Json, index: number, remove: () => void, changed: () => void): Card {
  const path = (name: string) => `rewardRules.${index}.${name}`;
  const reward = asObject(rule.reward);
  const when = asObject(rule.when);
  const cap = asObject(rule.cap);

  const id = textInput(str(rule.id), { maxlength: 64 });
  const on = select(
    [
      ['signup', 'a signup'],
      ['purchase', 'a purchase'],
    ],
    str(rule.on),
  );
  const to = select(
    [
      ['referrer', 'the referrer'],
      ['referee', 'the referred customer'],
      ['both', 'both'],
    ],
    str(rule.to),
  );
  const kind = select(
    [
      ['cash', 'cash'],
      ['credit', 'store credit'],
      ['coupon', 'a coupon'],
    ],
    str(reward.kind),
  );
  const valueType = select(
    [
      ['amount', 'a fixed amount'],
      ['percent', '% of the purchase'],
      ['none', 'the coupon alone'],
    ],
    reward.percent !== undefined ? 'percent' : reward.amount !== undefined ? 'amount' : reward.kind === 'coupon' ? 'none' : 'amount',
  );
  const amount = numberInput(num(reward.amount), { min: 0, placeholder: 'e.g. 500' });
  const currency = textInput(str(reward.currency), { maxlength: 3, placeholder: 'USD', class: 'input-currency' });
  const amountHint = minorUnitsHint(amount, () => currency.value.trim().toUpperCase() || null, 'rule-amount-hint');
  const percent = numberInput(num(reward.percent), { min: 0, max: 100, step: 'any', placeholder: 'e.g. 10' });
  const coupon = textInput(str(reward.coupon), { maxlength: 100, placeholder: 'e.g. WELCOME10' });
  const firstOnly = el('input', { type: 'checkbox' });
  firstOnly.checked = when.firstPurchaseOnly === true;
  const repeatOnly = el('input', { type: 'checkbox' });
  repeatOnly.checked = when.repeatPurchasesOnly === true;
  const minAmount = numberInput(num(when.minAmount), { min: 0, placeholder: 'none' });
  const minHint = minorUnitsHint(minAmount, () => 'purchase', 'rule-min-hint');
  const withinDays = numberInput(num(when.withinDays), { min: 1, placeholder: 'any time' });
  const afterReferrals = numberInput(num(when.afterReferrals), { min: 1, placeholder: 'from the 1st' });
  const atReferrals = numberInput(num(when.atReferrals), { min: 1, placeholder: 'none' });
  const holdDays = numberInput(num(rule.holdDays), { min: 0, placeholder: '0' });
  const perReferrer = numberInput(num(cap.perReferrer), { min: 1, placeholder: 'no cap' });

  const removeButton = el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-testid': 'rule-remove' }, 'Remove rule');
  removeButton.addEventListener('click', remove);

  const amountField = field('Amount, in cents (minor units)', amount, { path: path('reward.amount'), testid: 'rule-amount' }, amountHint);
  const currencyField = field('Currency', currency, { path: path('reward.currency'), testid: 'rule-currency', hint: 'ISO code, e.g. USD' });
  const percentField = field('Percent of the purchase', percent, {
    path: path('reward.percent'),
    testid: 'rule-percent',
    hint: 'Paid in the purchase’s currency, rounded down.',
  });
  const couponField = field('Coupon code', coupon, { path: path('reward.coupon'), testid: 'rule-coupon' });
  // Conditions on the purchase: hidden for a signup rule.
  const purchaseOnly = [
    el('div', { class: 'check-row' }, [
      checkField('First purchases only', firstOnly, { path: path('when.firstPurchaseOnly'), testid: 'rule-first-only' }),
      checkField('Repeat purchases only', repeatOnly, { path: path('when.repeatPurchasesOnly'), testid: 'rule-repeat-only' }),
    ]),
    field('Minimum purchase, in cents', minAmount, { path: path('when.minAmount'), testid: 'rule-min-amount' }, minHint),
    field('Within days of the referral', withinDays, { path: path('when.withinDays'), testid: 'rule-within-days' }),
  ] as const;

  /** Shows only the fields that mean something for the choices made. */
  function arrange() {
    const purchase = on.value === 'purchase';
    const percentOption = valueType.querySelector<HTMLOptionElement>('option[value="percent"]');
    if (percentOption) percentOption.disabled = !purchase;
    const noneOption = valueType.querySelector<HTMLOptionElement>('option[value="none"]');
    if (noneOption) noneOption.disabled = kind.value !== 'coupon';
    const type = valueType.value as ValueType;
    amountField.hidden = type !== 'amount';
    currencyField.hidden = type !== 'amount';
    percentField.hidden = type !== 'percent';
    couponField.hidden = kind.value !== 'coupon';
    for (const node of purchaseOnly) node.hidden = !purchase;
    refreshHint(amountHint);
  }

  const element = el('fieldset', { class: 'rule-card', 'data-testid': 'rule-card', 'data-rule-index': index }, [
    el('legend', {}, [`Rule ${index + 1}`]),
    el('div', { class: 'rule-head' }, [removeButton]),
    el('p', { class: 'field-error', 'data-error-for': `rewardRules.${index}`, 'data-testid': 'field-error', role: 'alert', hidden: true }),
    el('div', { class: 'field-grid' }, [
      field('Rule id', id, { path: path('id'), testid: 'rule-id', hint: 'Rewards remember it; keep it once in use.' }),
      field('Pays on', on, { path: path('on'), testid: 'rule-on' }),
      field('To', to, { path: path('to'), testid: 'rule-to' }),
      field('As', kind, { path: path('reward.kind'), testid: 'rule-kind' }),
    ]),
    el('div', { class: 'field-grid' }, [
      field('Worth', valueType, { path: path('reward'), testid: 'rule-value-type' }),
      amountField,
      currencyField,
      percentField,
      couponField,
    ]),
    purchaseOnly[0],
    el('div', { class: 'field-grid' }, [
      purchaseOnly[1],
      purchaseOnly[2],
      field('From the referrer’s Nth referral on', afterReferrals, {
        path: path('when.afterReferrals'),
        testid: 'rule-after-referrals',
        hint: 'A tier: 3 pays from the 3rd referral on.',
      }),
      field('Once, at the referrer’s Nth referral', atReferrals, {
        path: path('when.atReferrals'),
        testid: 'rule-at-referrals',
        hint: 'A milestone: paid once.',
      }),
    ]),
    el('p', { class: 'field-error', 'data-error-for': path('when'), 'data-testid': 'field-error', role: 'alert', hidden: true }),
    el('div', { class: 'field-grid' }, [
      field('Hold, in days', holdDays, { path: path('holdDays'), testid: 'rule-hold-days', hint: 'Pending until then (refund window).' }),
      field('Cap per referrer', perReferrer, { path: path('cap.perReferrer'), testid: 'rule-cap', hint: 'Grants at most, per referrer.' }),
    ]),
  ]);
  element.addEventListener('input', changed);
  element.addEventListener('change', () => {
    arrange();
    changed();
  });
  currency.addEventListener('input', () => refreshHint(amountHint));
  arrange();

  function read(): Json {
    const type = valueType.value as ValueType;
    const { amount: _a, percent: _p, currency: _c, coupon: _k, ...otherReward } = reward;
    const nextReward: Json = { ...otherReward, kind: kind.value };
    if (type === 'amount') {
      nextReward.amount = readNumber(amount);
      nextReward.currency = currency.value.trim().toUpperCase() || undefined;
    } else if (type === 'percent') {
      nextReward.percent = readNumber(percent);
    }
    if (kind.value === 'coupon') nextReward.coupon = coupon.value.trim() || undefined;
    const purchase = on.value === 'purchase';
    const nextWhen: Json = {
      ...(purchase && firstOnly.checked ? { firstPurchaseOnly: true } : {}),
      ...(purchase && repeatOnly.checked ? { repeatPurchasesOnly: true } : {}),
      ...(purchase ? { minAmount: readNumber(minAmount), withinDays: readNumber(withinDays) } : {}),
      afterReferrals: readNumber(afterReferrals),
      atReferrals: readNumber(atReferrals),
    };
    const { when: _w, cap: _cap, holdDays: _h, ...otherRule } = rule;
    const next: Json = { ...otherRule, id: id.value.trim(), on: on.value, to: to.value, reward: nextReward };
    if (Object.values(nextWhen).some((value) => value !== undefined)) next.when = nextWhen;
    const hold = readNumber(holdDays);
    if (hold !== undefined) next.holdDays = hold;
    const capped = readNumber(perReferrer);
    if (capped !== undefined) next.cap = { ...cap, perReferrer: capped };
    // Round-trip through JSON: undefined fields drop out, as they would on the wire.
    return JSON.parse(JSON.stringify(next)) as Json;
  }

  return { element, read };
}

export function ruleEditor(onChange: () => void): RuleEditor {
  const list = el('div', { class: 'rule-list', 'data-testid': 'rule-list' });
  const empty = el('p', { class: 'muted', 'data-testid': 'rules-empty' }, 'No reward rules: referrals are tracked, nothing is paid.');
  const add = el('button', { type: 'button', class: 'btn', 'data-testid': 'rule-add' }, '+ Add a rule');
  let cards: Card[] = [];

  function render(rules: Json[]) {
    cards = rules.map((rule, index) =>
      ruleCard(
        rule,
        index,
        () => {
          const kept = cards.map((card) => card.read()).filter((_, i) => i !== index);
          render(kept);
          onChange();
        },
        onChange,
      ),
    );
    list.replaceChildren(...cards.map((card) => card.element));
    empty.hidden = cards.length > 0;
  }

  add.addEventListener('click', () => {
    const rules = cards.map((card) => card.read());
    const taken = new Set(rules.map((rule) => rule.id));
    let n = rules.length;
    while (taken.has(NEW_RULE(n).id)) n++;
    render([...rules, NEW_RULE(n)]);
    cards.at(-1)?.element.querySelector('input')?.focus();
    onChange();
  });

  return {
    element: el('div', { class: 'rules' }, [empty, list, add]),
    read: () => cards.map((card) => card.read()),
    set: (rules) => render(rules.map(asObject)),
  };
}
