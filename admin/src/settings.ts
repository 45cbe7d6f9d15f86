/**
 * Settings: the program's facts and a JSON editor for its settings, saved with
 * PATCH /v1/program. A 422 lists each field's message next to the editor.
 */
import { ApiError } from './api.ts';
import type { View, ViewContext } from './context.ts';
import { byId, el, show } from './dom.ts';
import { formatDateTime } from './format.ts';
import type { Program } from './types.ts';

/** Settings the API masks when it shows them: left out of the editor so a save never writes the mask back. */
const MASKED = ['stripe'] as const;

/** The order the editor lists settings in (the database keeps its own); unknown keys follow. */
const ORDER = ['origins', 'landingUrl', 'cookieDays', 'attribution', 'windowDays', 'rewardRules', 'fraud', 'webhookUrl'];

function editable(settings: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  const keys = [...ORDER.filter((key) => key in settings), ...Object.keys(settings).filter((key) => !ORDER.includes(key))];
  for (const key of keys) if (!(MASKED as readonly string[]).includes(key)) copy[key] = settings[key];
  return copy;
}

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

export function settingsView(ctx: ViewContext, onProgram: (program: Program) => void): View {
  const facts = byId('program-facts');
  const form = byId<HTMLFormElement>('settings-form');
  const editor = byId<HTMLTextAreaElement>('settings-editor');
  const errors = byId<HTMLUListElement>('settings-errors');
  const status = byId('settings-status');
  const save = byId<HTMLButtonElement>('settings-save');
  let saved = '';

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
    editor.setAttribute('aria-invalid', String(lines.length > 0));
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
        stripe?.webhookSecret ? `set (${stripe.webhookSecret}); add "stripe": { "webhookSecret": "…" } below to replace it` : 'not set',
      ],
    ];
    facts.replaceChildren(...rows.flatMap(([term, value]) => [el('dt', {}, term), el('dd', {}, value)]));
    saved = pretty(editable(program.settings));
    editor.value = saved;
    onProgram(program);
  }

  function parseEditor(): Record<string, unknown> | null {
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
    return value as Record<string, unknown>;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showStatus('');
    const settings = parseEditor();
    if (!settings) return;
    showErrors([]);
    save.disabled = true;
    try {
      const { program } = await ctx.api.patch<{ program: Program }>('/v1/program', { settings });
      renderProgram(program);
      showStatus(`Saved at ${new Date().toLocaleTimeString()}.`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 422 && Object.keys(error.fields).length) {
        showErrors(Object.entries(error.fields).map(([field, message]) => [field === '_' ? null : field, message]));
      } else if (error instanceof ApiError && error.status !== 401) {
        showErrors([[null, error.message]]);
      } else {
        ctx.fail(error);
      }
    } finally {
      save.disabled = false;
    }
  });

  byId('settings-format').addEventListener('click', () => {
    const settings = parseEditor();
    if (settings) {
      showErrors([]);
      editor.value = pretty(settings);
    }
  });

  byId('settings-reset').addEventListener('click', () => {
    editor.value = saved;
    showErrors([]);
    showStatus('');
  });

  return {
    async load() {
      showErrors([]);
      showStatus('');
      try {
        renderProgram((await ctx.api.get<{ program: Program }>('/v1/program')).program);
      } catch (error) {
        ctx.fail(error);
      }
    },
    reset() {
      facts.replaceChildren();
      editor.value = '';
      saved = '';
      showErrors([]);
      showStatus('');
    },
  };
}
