/**
 * What every section gets from the shell: the API client, the selected date
 * range and a way to report a problem.
 */
import type { Api } from './api.ts';

export interface DateRange {
  from: string;
  to: string;
}

export interface ViewContext {
  api: Api;
  range: () => DateRange;
  /** Shows a message above the sections; errors stay until the next one or a tab change. */
  notify: (message: string, kind?: 'error' | 'info') => void;
  /** Reports a failed load or action (a 401 is already handled by the shell). */
  fail: (error: unknown) => void;
}

/** A section of the dashboard: loaded each time its tab opens, emptied on sign-out. */
export interface View {
  load: () => Promise<void>;
  reset: () => void;
}
