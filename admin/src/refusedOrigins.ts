/**
 * The refused-origin banner: a page whose origin is not in the program's origins gets
 * a generic CORS error in the browser, and its visitors' clicks and events wait in
 * their browsers. The collector records it (GET /v1/program/refused-origins); this
 * says so above every section, with a one-click "Add this origin".
 */
import type { Api } from './api.ts';
import type { ViewContext } from './context.ts';
import { byId, el, show } from './dom.ts';
import { formatCount, formatDateTime } from './format.ts';
import type { Program, RefusedOrigin } from './types.ts';

/** Banners shown at most; the rest are counted. */
const SHOWN = 3;

export interface RefusedOriginsBanner {
  load: () => Promise<void>;
  reset: () => void;
}

/** Adds `origin` to the program's origins (read fresh, so a concurrent edit is not undone). */
async function addOrigin(api: Api, origin: string): Promise<Program> {
  const { program } = await api.get<{ program: Program }>('/v1/program');
  const origins = program.settings.origins.includes(origin) ? program.settings.origins : [...program.settings.origins, origin];
  return (await api.patch<{ program: Program }>('/v1/program', { settings: { origins } })).program;
}

export function refusedOriginsBanner(ctx: ViewContext, onProgram: (program: Program) => void): RefusedOriginsBanner {
  const host = byId('refused-origins');
  let generation = 0;

  function render(refused: RefusedOrigin[]) {
    const rows = refused.slice(0, SHOWN).map((item) => {
      const add = el(
        'button',
        { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': 'refused-origin-add' },
        'Add this origin',
      );
      add.addEventListener('click', async () => {
        add.disabled = true;
        try {
          onProgram(await addOrigin(ctx.api, item.origin));
          ctx.notify(`${item.origin} is now one of the program's origins: its pages' events are accepted.`, 'info');
          await load();
        } catch (error) {
          add.disabled = false;
          ctx.fail(error);
        }
      });
      return el('div', { class: 'refused', 'data-testid': 'refused-origin', 'data-origin': item.origin }, [
        el('div', { class: 'refused-text' }, [
          el('strong', {}, ['Events refused from origin ', el('code', {}, item.origin)]),
          ` (${formatCount(item.count)}${item.count === 1 ? ' request' : ' requests'}, last at ${formatDateTime(item.lastSeen)}).`,
          el(
            'div',
            { class: 'refused-why' },
            "This page's origin is not in the program's origins, so the browser gets a CORS error and its visitors' clicks and signups wait unsent. If the page is yours, add its origin.",
          ),
        ]),
        add,
      ]);
    });
    if (refused.length > SHOWN)
      rows.push(el('div', { class: 'refused-more' }, `And ${refused.length - SHOWN} more origins: see Settings.`));
    host.replaceChildren(...rows);
    show(host, refused.length > 0);
  }

  async function load() {
    const mine = ++generation;
    try {
      const { data } = await ctx.api.get<{ data: RefusedOrigin[] }>('/v1/program/refused-origins');
      if (mine === generation) render(data);
    } catch (error) {
      if (mine === generation) ctx.fail(error);
    }
  }

  return {
    load,
    reset() {
      generation++;
      host.replaceChildren();
      show(host, false);
    },
  };
}
