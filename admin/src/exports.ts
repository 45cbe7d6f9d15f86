/**
 * CSV downloads. The file is fetched with the Authorization header and saved
 * from a Blob, so the key never appears in a URL.
 */
import type { View, ViewContext } from './context.ts';
import { byId } from './dom.ts';
import { formatCount } from './format.ts';

const EXPORTS = new Set(['referrals.csv', 'rewards.csv', 'clicks.csv']);

/** Saves a downloaded Blob as a file (through a short-lived blob: URL, never the API's). */
export function saveBlob(blob: Blob, filename: string) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  // Give the browser a moment to start the download before the URL goes away.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function exportsView(ctx: ViewContext): View {
  const status = byId('export-status');
  const buttons = [...byId('section-exports').querySelectorAll<HTMLButtonElement>('button[data-export]')];

  for (const button of buttons) {
    button.addEventListener('click', async () => {
      const name = button.dataset.export ?? '';
      if (!EXPORTS.has(name)) return;
      button.disabled = true;
      status.textContent = `Preparing ${name}…`;
      try {
        const { blob, filename } = await ctx.api.download(`/v1/exports/${name}`);
        saveBlob(blob, filename ?? name);
        status.textContent = `Downloaded ${filename ?? name} (${formatCount(Math.ceil(blob.size / 1024))} KB).`;
      } catch (error) {
        status.textContent = '';
        ctx.fail(error);
      } finally {
        button.disabled = false;
      }
    });
  }

  return {
    load: async () => undefined,
    reset() {
      status.textContent = '';
    },
  };
}
