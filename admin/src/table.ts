/**
 * A table body filled page by page: "Load more" asks for the next page with the
 * token (cursor or offset) the previous page returned.
 */
import { show } from './dom.ts';

export interface Page<T, Token> {
  data: T[];
  next: Token | null;
}

export interface PagedTableOptions<T, Token> {
  body: HTMLTableSectionElement;
  empty: HTMLElement;
  more: HTMLButtonElement;
  columns: number;
  fetchPage: (token: Token | null) => Promise<Page<T, Token>>;
  renderRow: (item: T, index: number) => HTMLTableRowElement;
  onError: (error: unknown) => void;
}

export interface PagedTable {
  /** Empties the table and loads the first page. */
  reload: () => Promise<void>;
  reset: () => void;
}

export function pagedTable<T, Token>(options: PagedTableOptions<T, Token>): PagedTable {
  const { body, empty, more } = options;
  let next: Token | null = null;
  let count = 0;
  // A newer reload wins over an older one still in flight.
  let generation = 0;

  function reset() {
    generation++;
    next = null;
    count = 0;
    body.replaceChildren();
    show(empty, false);
    show(more, false);
  }

  function loadingRow(): HTMLTableRowElement {
    const row = document.createElement('tr');
    row.className = 'loading-row';
    const cell = document.createElement('td');
    cell.colSpan = options.columns;
    cell.textContent = 'Loading…';
    row.appendChild(cell);
    return row;
  }

  async function loadPage(first: boolean) {
    const mine = generation;
    const placeholder = loadingRow();
    body.appendChild(placeholder);
    more.disabled = true;
    try {
      const page = await options.fetchPage(first ? null : next);
      if (mine !== generation) return;
      for (const item of page.data) body.appendChild(options.renderRow(item, count++));
      next = page.next;
      show(empty, count === 0);
      show(more, next !== null);
    } catch (error) {
      if (mine === generation) options.onError(error);
    } finally {
      placeholder.remove();
      more.disabled = false;
    }
  }

  more.addEventListener('click', () => void loadPage(false));

  return {
    reset,
    async reload() {
      reset();
      await loadPage(true);
    },
  };
}
