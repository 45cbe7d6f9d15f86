/**
 * The settings form: origins, landing URL, cookie and attribution windows, the
 * attribution model and the reward rules (ruleEditor.ts). It edits a copy of the
 * stored settings, so settings the form has no field for (fraud, webhooks, payouts,
 * …) are saved back as they were; the JSON view edits the same copy.
 */
import { el } from './dom.ts';
import { field, numberInput, readNumber, select, textInput } from './fields.ts';
import { ruleEditor } from './ruleEditor.ts';

type Json = Record<string, unknown>;

export interface SettingsForm {
  element: HTMLElement;
  /** The settings as typed, over the copy the form was given. */
  read: () => Json;
  set: (settings: Json) => void;
  /** The rules as typed (for the preview). */
  rules: () => Json[];
}

export function settingsForm(onChange: () => void, onRulesChange: () => void): SettingsForm {
  let base: Json = {};
  const originList = el('div', { class: 'origin-list', 'data-testid': 'origin-list' });
  const addOrigin = el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'origin-add' }, '+ Add an origin');
  const landingUrl = textInput('', { type: 'url', placeholder: 'https://shop.example/welcome' });
  const cookieDays = numberInput(undefined, { min: 1, max: 730 });
  const windowDays = numberInput(undefined, { min: 1, max: 730 });
  const attribution = select(
    [
      ['first', 'First click wins'],
      ['last', 'Last click wins'],
    ],
    'first',
  );
  const rules = ruleEditor(() => {
    onChange();
    onRulesChange();
  });

  function originRow(value: string, index: number): HTMLElement {
    const input = textInput(value, { type: 'url', placeholder: 'https://www.shop.example', 'aria-label': `Origin ${index + 1}` });
    const remove = el(
      'button',
      { type: 'button', class: 'btn btn-small btn-ghost', 'data-testid': 'origin-remove', 'aria-label': `Remove origin ${index + 1}` },
      'Remove',
    );
    remove.addEventListener('click', () => {
      renderOrigins(readOrigins().filter((_, i) => i !== index));
      onChange();
    });
    input.dataset.testid = 'origin-input';
    return el('div', { class: 'origin-row field', 'data-field': `origins.${index}` }, [
      el('div', { class: 'field-row' }, [input, remove]),
      el('p', { class: 'field-error', 'data-error-for': `origins.${index}`, 'data-testid': 'field-error', role: 'alert', hidden: true }),
    ]);
  }

  const readOrigins = () => [...originList.querySelectorAll<HTMLInputElement>('input')].map((input) => input.value.trim());

  function renderOrigins(origins: string[]) {
    originList.replaceChildren(...origins.map(originRow));
  }

  addOrigin.addEventListener('click', () => {
    renderOrigins([...readOrigins(), '']);
    originList.querySelector<HTMLInputElement>('.origin-row:last-child input')?.focus();
    onChange();
  });

  const element = el('div', { class: 'settings-visual' }, [
    el('section', { class: 'form-section' }, [
      el('h3', {}, 'Where the script runs'),
      el('div', { class: 'field field-wide', 'data-field': 'origins' }, [
        el('label', {}, 'Origins'),
        el(
          'p',
          { class: 'hint' },
          'The sites whose pages send clicks and events (scheme and host, e.g. https://www.shop.example). Any other page gets a CORS error.',
        ),
        originList,
        addOrigin,
        el('p', { class: 'field-error', 'data-error-for': 'origins', 'data-testid': 'field-error', role: 'alert', hidden: true }),
      ]),
      field('Landing URL', landingUrl, {
        path: 'landingUrl',
        testid: 'settings-landing-url',
        hint: 'Where referral links (/r/CODE) send visitors, with ?ref=CODE added.',
        wide: true,
      }),
    ]),
    el('section', { class: 'form-section' }, [
      el('h3', {}, 'Attribution'),
      el('div', { class: 'field-grid' }, [
        field('Cookie lifetime, in days', cookieDays, {
          path: 'cookieDays',
          testid: 'settings-cookie-days',
          hint: 'How long a visitor keeps the referral code.',
        }),
        field('Attribution window, in days', windowDays, {
          path: 'windowDays',
          testid: 'settings-window-days',
          hint: 'A click older than this no longer attributes a signup.',
        }),
        field('When a visitor clicked several codes', attribution, { path: 'attribution', testid: 'settings-attribution' }),
      ]),
    ]),
    el('section', { class: 'form-section' }, [
      el('h3', {}, 'Reward rules'),
      el('p', { class: 'hint' }, 'Amounts are integer minor units: cents for USD and EUR, whole yen for JPY. 4900 is $49.00; 49 is $0.49.'),
      el('p', { class: 'field-error', 'data-error-for': 'rewardRules', 'data-testid': 'field-error', role: 'alert', hidden: true }),
      rules.element,
    ]),
  ]);
  element.addEventListener('input', onChange);

  return {
    element,
    read() {
      const next: Json = {
        ...base,
        origins: readOrigins().filter(Boolean),
        landingUrl: landingUrl.value.trim(),
        cookieDays: readNumber(cookieDays),
        windowDays: readNumber(windowDays),
        attribution: attribution.value,
        rewardRules: rules.read(),
      };
      return JSON.parse(JSON.stringify(next)) as Json;
    },
    set(settings) {
      base = settings;
      renderOrigins(Array.isArray(settings.origins) ? settings.origins.map(String) : []);
      landingUrl.value = typeof settings.landingUrl === 'string' ? settings.landingUrl : '';
      cookieDays.value = settings.cookieDays === undefined ? '' : String(settings.cookieDays);
      windowDays.value = settings.windowDays === undefined ? '' : String(settings.windowDays);
      attribution.value = settings.attribution === 'last' ? 'last' : 'first';
      rules.set(Array.isArray(settings.rewardRules) ? settings.rewardRules : []);
    },
    rules: () => rules.read(),
  };
}
