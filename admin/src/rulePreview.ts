/**
 * What each rule pays, for a sample signup and a sample purchase the operator types.
 * The collector answers (POST /v1/program/rules/preview) with the very functions that
 * grant real rewards, for the rules as they stand in the form, saved or not.
 */
import { ApiError } from './api.ts';
import type { ViewContext } from './context.ts';
import { el } from './dom.ts';
import { checkField, field, minorUnitsHint, numberInput, placeFieldErrors, readNumber, refreshHint, textInput } from './fields.ts';
import { formatCount, formatMoney } from './format.ts';
import type { RulePreview, RulePreviewOutcome } from './types.ts';

type Json = Record<string, unknown>;

const DEBOUNCE_MS = 250;

const KIND_WORDS: Record<string, string> = { cash: 'cash', credit: 'store credit', coupon: 'coupon' };
const WHO: Record<string, string> = { referrer: 'Referrer', referee: 'Referred customer' };

function outcomeCell(outcome: RulePreviewOutcome, testid: string): HTMLTableCellElement {
  const cell = el('td', { 'data-testid': testid, 'data-applies': outcome.applies });
  if (!outcome.applies) {
    cell.append(el('span', { class: 'muted' }, `Nothing: ${outcome.message ?? outcome.reason ?? 'does not apply'}`));
    return cell;
  }
  for (const reward of outcome.rewards) {
    const worth =
      reward.kind === 'coupon'
        ? `coupon ${reward.coupon ?? ''}${reward.amount ? ` worth ${formatMoney(reward.amount, reward.currency)}` : ''}`
        : `${formatMoney(reward.amount, reward.currency)} ${KIND_WORDS[reward.kind]}`;
    cell.append(
      el(
        'div',
        {
          class: 'preview-line',
          'data-testid': 'preview-reward',
          'data-to': reward.to,
          'data-kind': reward.kind,
          'data-amount': reward.amount,
          'data-currency': reward.currency ?? '',
        },
        [
          el('strong', {}, `${WHO[reward.to] ?? reward.to}: `),
          worth,
          reward.holdDays ? el('span', { class: 'muted' }, ` (pending ${formatCount(reward.holdDays)} days)`) : null,
        ],
      ),
    );
  }
  return cell;
}

export interface RulePreviewPanel {
  element: HTMLElement;
  /** Asks again, soon (the rules changed). */
  schedule: () => void;
  reset: () => void;
}

/**
 * `rules` gives the form's rules; `showRuleErrors` puts the preview's complaints about
 * them next to the rule fields (paths as in the settings: rewardRules.N…).
 */
export function rulePreviewPanel(
  ctx: ViewContext,
  rules: () => Json[],
  showRuleErrors: (fields: Record<string, string>) => void,
): RulePreviewPanel {
  const amount = numberInput(4900, { min: 0 });
  const currency = textInput('USD', { maxlength: 3, class: 'input-currency' });
  const amountHint = minorUnitsHint(amount, () => currency.value.trim().toUpperCase() || null, 'preview-amount-hint');
  const referralNumber = numberInput(1, { min: 1 });
  const daysSince = numberInput(0, { min: 0 });
  const first = el('input', { type: 'checkbox' });
  first.checked = true;
  const body = el('tbody', { 'data-testid': 'preview-body' });
  const purchaseHead = el('th', { scope: 'col' }, 'On a purchase');
  const status = el('p', { class: 'muted', 'data-testid': 'preview-status', role: 'status' });
  const sampleFields = el('div', { class: 'field-grid' }, [
    field('Sample purchase, in cents', amount, { path: 'sample.purchaseAmount', testid: 'preview-amount' }, amountHint),
    field('Currency', currency, { path: 'sample.currency', testid: 'preview-currency' }),
    field('The referrer’s Nth referral', referralNumber, { path: 'sample.referralNumber', testid: 'preview-referral-number' }),
    field('Days after the referral', daysSince, { path: 'sample.daysSinceReferral', testid: 'preview-days' }),
    checkField('The customer’s first purchase', first, { path: 'sample.firstPurchase', testid: 'preview-first' }),
  ]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let generation = 0;

  function sample(): Json {
    return {
      purchaseAmount: readNumber(amount),
      currency: currency.value.trim().toUpperCase(),
      referralNumber: readNumber(referralNumber),
      daysSinceReferral: readNumber(daysSince),
      firstPurchase: first.checked,
    };
  }

  function render(preview: RulePreview) {
    purchaseHead.textContent = `On a purchase of ${formatMoney(preview.sample.purchaseAmount, preview.sample.currency)}`;
    body.replaceChildren(
      ...preview.rules.map((rule) =>
        el('tr', { 'data-testid': 'preview-row', 'data-rule': rule.rule }, [
          el('td', {}, [
            el('code', {}, rule.rule),
            rule.capPerReferrer ? el('div', { class: 'sub' }, `at most ${formatCount(rule.capPerReferrer)} per referrer`) : null,
          ]),
          outcomeCell(rule.signup, 'preview-signup'),
          outcomeCell(rule.purchase, 'preview-purchase'),
        ]),
      ),
    );
    status.textContent = preview.rules.length
      ? `For a conversion your server reports, the ${formatCount(preview.sample.referralNumber)}${ordinal(preview.sample.referralNumber)} referral of its referrer. Caps count a referrer's earlier grants, which a sample has none of.`
      : 'No rules to preview.';
  }

  async function run() {
    const mine = ++generation;
    try {
      const preview = await ctx.api.post<RulePreview>('/v1/program/rules/preview', { rules: rules(), sample: sample() });
      if (mine !== generation) return;
      placeFieldErrors(sampleFields, {});
      showRuleErrors({});
      render(preview);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof ApiError && error.status === 422) {
        const ruleErrors: Record<string, string> = {};
        const sampleErrors: Record<string, string> = {};
        for (const [path, message] of Object.entries(error.fields)) {
          if (path.startsWith('rules.')) ruleErrors[`rewardRules.${path.slice('rules.'.length)}`] = message;
          else sampleErrors[path] = message;
        }
        placeFieldErrors(sampleFields, sampleErrors);
        showRuleErrors(ruleErrors);
        body.replaceChildren();
        status.textContent = Object.keys(ruleErrors).length
          ? 'Fix the fields marked above to see what the rules pay.'
          : 'Fix the sample to see what the rules pay.';
      } else {
        ctx.fail(error);
      }
    }
  }

  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void run(), DEBOUNCE_MS);
  };
  sampleFields.addEventListener('input', schedule);
  sampleFields.addEventListener('change', schedule);
  currency.addEventListener('input', () => refreshHint(amountHint));

  const element = el('div', { class: 'panel', 'data-testid': 'rule-preview' }, [
    el('div', { class: 'panel-head' }, [
      el('h2', {}, 'What the rules pay'),
      el('span', { class: 'muted' }, 'Worked out by the collector with the same rule logic as real grants.'),
    ]),
    sampleFields,
    el('div', { class: 'table-wrap' }, [
      el('table', { class: 'table preview-table', 'data-testid': 'preview-table' }, [
        el('thead', {}, el('tr', {}, [el('th', { scope: 'col' }, 'Rule'), el('th', { scope: 'col' }, 'On a signup'), purchaseHead])),
        body,
      ]),
    ]),
    status,
  ]);

  return {
    element,
    schedule,
    reset() {
      generation++;
      clearTimeout(timer);
      body.replaceChildren();
      status.textContent = '';
    },
  };
}

const ordinal = (n: number) => {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return 'th';
  return ['th', 'st', 'nd', 'rd'][n % 10] ?? 'th';
};
