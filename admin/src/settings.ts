/**
 * Settings: the program's facts, its settings as a form (settingsForm.ts) or as JSON
 * for power users, saved with PATCH /v1/program, and what the reward rules pay for a
 * sample (rulePreview.ts). A 422's field messages show next to their fields in the
 * form, or as a list under the JSON.
 */
import { ApiError } from './api.ts';
import type { View, ViewContext } from './context.ts';
import { byId, el, show } from './dom.ts';
import { placeFieldErrors } from './fields.ts';
import { formatDateTime } from './format.ts';
import { rulePreviewPanel } from './rulePreview.ts';
import { settingsForm } from './settingsForm.ts';
import type { Program } from './types.ts';

type Json = Record<string, unknown>;
type Mode = 'form' | 'json';

/** Settings the API masks when it shows them: left out of the editor so a save never writes the mask back. */
const MASKED = ['stripe'] as const;

/** The order the editor lists settings in (the database keeps its own); unknown keys follow. */
const ORDER = ['origins', 'landingUrl', 'cookieDays', 'attribution', 'windowDays', 'rewardRules', 'fraud', 'webhookUrl'];

function editable(settings: Json): Json {
  const copy: Json = {};
  const keys = [...ORDER.filter((key) => key in settings), ...Object.keys(settings).filter((key) => !ORDER.includes(key))];
  for (const key of keys) if (!(MASKED as readonly string[]).includes(key)) copy[key] = settings[key];
  return copy;
}

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

export function settingsView(ctx: ViewContext, onProgram: (program: Program) => void): View {
  const facts = byId('program-facts');
  const formElement = byId<HTMLFormElement>('settings-form');
  const visual = byId('settings-visual');
  const jsonView = byId('settings-json');
  const editor = byId<HTMLTextAreaElement>('settings-editor');
  const errors = byId<HTMLUListElement>('settings-errors');
  const status = byId('settings-status');
  const save = byId<HTMLButtonElement>('settings-save');
  const formatButton = byId<HTMLButtonElement>('settings-format');
  const modeButtons: Record<Mode, HTMLButtonElement> = {
    form: byId<HTMLButtonElement>('settings-mode-form'),
    json: byId<HTMLButtonElement>('settings-mode-json'),
  };
  let saved: Json = {};
  let mode: Mode = 'form';

  const form = settingsForm(
    () => showStatus(''),
    () => preview.schedule(),
  );
  const preview = rulePreviewPanel(
    ctx,
    () => currentRules(),
    (fields) => placeFieldErrors(visual, fields),
  );
  visual.append(form.element);
  byId('settings-preview').append(preview.element);

  /** The rules as they stand in whichever view is open (the JSON's, if it parses). */
  function currentRules(): Json[] {
    if (mode === 'form') return form.rules();
    try {
      const parsed = JSON.parse(editor.value) as Json;
      return Array.isArray(parsed.rewardRules) ? (parsed.rewardRules as Json[]) : [];
    } catch {
      return [];
    }
  }

  function showErrors(lines: Array<[field: string | null, message: string]>) {
    errors.replaceChildren(
      ...lines.map(([field, message]) =>
        el(
          'li',
          { 'data-testid': 'settings-field-error', 'data-field': field ?? undefined },
          field ? [el('code', {}, field), `: ${message}`] : message,
        ),
      ),
    );
    show(errors, lines.length > 0);
    editor.setAttribute('aria-invalid', String(mode === 'json' && lines.length > 0));
  }

  /** The API's field messages: next to their field in the form; what has no field, listed below. */
  function showFieldErrors(fields: Record<string, string>) {
    const lines = Object.entries(fields).map(([field, message]) => [field === '_' ? null : field, message] as [string | null, string]);
    if (mode === 'json') {
      placeFieldErrors(visual, {});
      showErrors(lines);
      return;
    }
    const inForm: Record<string, string> = {};
    const elsewhere: Array<[string | null, string]> = [];
    for (const [field, message] of lines) {
      if (field?.startsWith('settings.')) inForm[field.slice('settings.'.length)] = message;
      else elsewhere.push([field, message]);
    }
    const leftover = placeFieldErrors(visual, inForm).map(([field, message]) => [`settings.${field}`, message] as [string, string]);
    showErrors([...leftover, ...elsewhere]);
    visual.querySelector<HTMLElement>('.field-invalid input, .field-invalid select')?.focus();
  }

  function clearErrors() {
    showErrors([]);
    placeFieldErrors(visual, {});
  }

  function showStatus(message: string) {
    status.textContent = message;
    show(status, Boolean(message));
  }

  function secretFact(secret: string): HTMLElement {
    const value = el('code', { 'data-testid': 'webhook-secret' }, `${secret.slice(0, 8)}…`);
    const toggle = el('button', { type: 'button', class: 'btn btn-small btn-ghost' }, 'Show');
    toggle.addEventListener('click', () => {
      const hidden = toggle.textContent === 'Show';
      value.textContent = hidden ? secret : `${secret.slice(0, 8)}…`;
      toggle.textContent = hidden ? 'Hide' : 'Show';
    });
    return el('span', { class: 'secret' }, [value, toggle]);
  }

  function renderProgram(program: Program) {
    const stripe = program.settings.stripe as { webhookSecret?: string } | undefined;
    const rows: Array<[string, Node | string]> = [
      ['Name', program.name],
      ['Slug', el('code', {}, program.slug)],
      ['Program id', el('code', {}, program.id)],
      ['Created', formatDateTime(program.createdAt)],
      ['Webhook signing secret', program.webhookSecret ? secretFact(program.webhookSecret) : '—'],
      [
        'Stripe webhook secret',
        stripe?.webhookSecret
          ? `set (${stripe.webhookSecret}); add "stripe": { "webhookSecret": "…" } in the JSON view to replace it`
          : 'not set',
      ],
    ];
    facts.replaceChildren(...rows.flatMap(([term, value]) => [el('dt', {}, term), el('dd', {}, value)]));
    saved = editable(program.settings as unknown as Json);
    form.set(saved);
    editor.value = pretty(saved);
    onProgram(program);
    preview.schedule();
  }

  function parseEditor(): Json | null {
    let value: unknown;
    try {
      value = JSON.parse(editor.value);
    } catch (error) {
      showErrors([[null, `The settings are not valid JSON: ${(error as Error).message}`]]);
      return null;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      showErrors([[null, 'The settings must be a JSON object, e.g. { "rewardRules": [] }']]);
      return null;
    }
    return value as Json;
  }

  /** Switches views, carrying what was typed across; bad JSON keeps the JSON view open. */
  function setMode(next: Mode) {
    if (next === mode) return;
    if (next === 'form') {
      const settings = parseEditor();
      if (!settings) return;
      form.set(settings);
    } else {
      editor.value = pretty(form.read());
    }
    clearErrors();
    mode = next;
    for (const [name, button] of Object.entries(modeButtons)) button.setAttribute('aria-pressed', String(name === mode));
    show(visual, mode === 'form');
    show(jsonView, mode === 'json');
    show(formatButton, mode === 'json');
    preview.schedule();
  }

  formElement.addEventListener('submit', async (event) => {
    event.preventDefault();
    showStatus('');
    const settings = mode === 'form' ? form.read() : parseEditor();
    if (!settings) return;
    clearErrors();
    save.disabled = true;
    try {
      const { program } = await ctx.api.patch<{ program: Program }>('/v1/program', { settings });
      renderProgram(program);
      showStatus(`Saved at ${new Date().toLocaleTimeString()}.`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 422 && Object.keys(error.fields).length) {
        showFieldErrors(error.fields);
      } else if (error instanceof ApiError && error.status !== 401) {
        showErrors([[null, error.message]]);
      } else {
        ctx.fail(error);
      }
    } finally {
      save.disabled = false;
    }
  });

  modeButtons.form.addEventListener('click', () => setMode('form'));
  modeButtons.json.addEventListener('click', () => setMode('json'));
  editor.addEventListener('input', () => preview.schedule());

  formatButton.addEventListener('click', () => {
    const settings = parseEditor();
    if (settings) {
      clearErrors();
      editor.value = pretty(settings);
    }
  });

  byId('settings-reset').addEventListener('click', () => {
    form.set(saved);
    editor.value = pretty(saved);
    clearErrors();
    showStatus('');
    preview.schedule();
  });

  return {
    async load() {
      clearErrors();
      showStatus('');
      try {
        renderProgram((await ctx.api.get<{ program: Program }>('/v1/program')).program);
      } catch (error) {
        ctx.fail(error);
      }
    },
    reset() {
      facts.replaceChildren();
      form.set({});
      editor.value = '';
      saved = {};
      clearErrors();
      showStatus('');
      preview.reset();
    },
  };
}
