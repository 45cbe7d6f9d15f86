/**
 * The dashboard shell: sign-in with a secret key, tab navigation, the shared
 * date range and the notice bar. Each section lives in its own module.
 */
import { ApiError, createApi } from './api.ts';
import type { DateRange, View, ViewContext } from './context.ts';
import { byId, show } from './dom.ts';
import { exportsView } from './exports.ts';
import { addDays, isDay, isoDay } from './format.ts';
import { emailsView } from './emails.ts';
import { leaderboardView } from './leaderboard.ts';
import { overviewView } from './overview.ts';
import { payoutsView } from './payouts.ts';
import { referralsView } from './referrals.ts';
import { refusedOriginsBanner } from './refusedOrigins.ts';
import { rewardsView } from './rewards.ts';
import { settingsView } from './settings.ts';
import { clearKey, readKey, saveKey } from './session.ts';
import type { Program } from './types.ts';

const TABS = ['overview', 'leaderboard', 'referrals', 'rewards', 'payouts', 'settings', 'emails', 'exports'] as const;
type Tab = (typeof TABS)[number];
/** Sections that read the date range. */
const RANGED: ReadonlySet<Tab> = new Set<Tab>(['overview', 'leaderboard']);
const DEFAULT_DAYS = 30;
const INFO_MS = 4000;

const isTab = (value: string): value is Tab => (TABS as readonly string[]).includes(value);

function start() {
  const signin = byId('signin');
  const signinForm = byId<HTMLFormElement>('signin-form');
  const keyInput = byId<HTMLInputElement>('signin-key');
  const signinError = byId('signin-error');
  const signinSubmit = byId<HTMLButtonElement>('signin-submit');
  const app = byId('app');
  const notice = byId('notice');
  const programName = byId('program-name');
  const rangeForm = byId<HTMLFormElement>('range');
  const fromInput = byId<HTMLInputElement>('range-from');
  const toInput = byId<HTMLInputElement>('range-to');

  let active: Tab = 'overview';
  let infoTimer: ReturnType<typeof setTimeout> | undefined;

  function setRange(days: number) {
    const today = isoDay(new Date());
    toInput.value = today;
    fromInput.value = addDays(today, -(days - 1));
  }

  function range(): DateRange {
    return { from: fromInput.value, to: toInput.value };
  }

  function notify(message: string, kind: 'error' | 'info' = 'error') {
    clearTimeout(infoTimer);
    notice.textContent = message;
    notice.className = `notice notice-${kind}`;
    show(notice, Boolean(message));
    if (kind === 'info') infoTimer = setTimeout(() => show(notice, false), INFO_MS);
  }

  function fail(error: unknown) {
    // A 401 already sent the operator back to the sign-in form.
    if (error instanceof ApiError && error.status === 401) return;
    notify(error instanceof ApiError ? error.message : 'Something went wrong in the dashboard; reload the page.', 'error');
  }

  function showSignin(message?: string) {
    for (const view of Object.values(views)) view.reset();
    refused.reset();
    show(app, false);
    show(signin, true);
    signinError.textContent = message ?? '';
    show(signinError, Boolean(message));
    keyInput.value = '';
    keyInput.focus();
  }

  const api = createApi({
    key: readKey,
    onUnauthorized(message) {
      clearKey();
      showSignin(`Your key was not accepted: ${message}`);
    },
  });

  const ctx: ViewContext = { api, range, notify, fail };
  const views: Record<Tab, View> = {
    overview: overviewView(ctx),
    leaderboard: leaderboardView(ctx),
    referrals: referralsView(ctx),
    rewards: rewardsView(ctx),
    payouts: payoutsView(ctx),
    settings: settingsView(ctx, (program: Program) => {
      programName.textContent = program.name;
    }),
    emails: emailsView(ctx),
    exports: exportsView(ctx),
  };
  // An origin added from the banner shows in the settings at once.
  const refused = refusedOriginsBanner(ctx, (program) => {
    programName.textContent = program.name;
    if (active === 'settings') void views.settings.load();
  });

  function activate(tab: Tab) {
    active = tab;
    for (const name of TABS) {
      const selected = name === tab;
      const button = byId(`tab-${name}`);
      button.setAttribute('aria-selected', String(selected));
      button.tabIndex = selected ? 0 : -1;
      show(byId(`section-${name}`), selected);
    }
    show(rangeForm, RANGED.has(tab));
    show(notice, false);
    if (location.hash !== `#${tab}`) history.replaceState(null, '', `#${tab}`);
    views[tab].load().catch(fail);
    void refused.load();
  }

  async function enter() {
    const { program } = await api.get<{ program: Program }>('/v1/program');
    programName.textContent = program.name;
    show(signin, false);
    show(app, true);
    const hash = location.hash.slice(1);
    activate(isTab(hash) ? hash : 'overview');
  }

  signinForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!/^sk_\S+$/.test(key)) {
      signinError.textContent = key.startsWith('pk_')
        ? 'That is a publishable key; the dashboard needs the secret key (sk_…).'
        : 'Enter your secret key; it starts with sk_.';
      show(signinError, true);
      return;
    }
    saveKey(key);
    signinSubmit.disabled = true;
    try {
      await enter();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        clearKey();
        showSignin(error instanceof ApiError ? error.message : 'Signing in failed; try again.');
      }
    } finally {
      signinSubmit.disabled = false;
    }
  });

  byId('signout').addEventListener('click', () => {
    clearKey();
    showSignin();
  });

  for (const name of TABS) byId(`tab-${name}`).addEventListener('click', () => activate(name));
  // Arrow keys move between tabs, as in any tab list.
  byId('app')
    .querySelector('[role="tablist"]')
    ?.addEventListener('keydown', (event) => {
      const key = (event as KeyboardEvent).key;
      if (key !== 'ArrowRight' && key !== 'ArrowLeft') return;
      const next = TABS[(TABS.indexOf(active) + (key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length] ?? 'overview';
      activate(next);
      byId(`tab-${next}`).focus();
    });
  window.addEventListener('hashchange', () => {
    const hash = location.hash.slice(1);
    if (!app.hidden && isTab(hash) && hash !== active) activate(hash);
  });

  rangeForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const { from, to } = range();
    if (!isDay(from) || !isDay(to) || from > to) {
      notify('Choose a start date on or before the end date.', 'error');
      return;
    }
    activate(active);
  });
  for (const preset of rangeForm.querySelectorAll<HTMLButtonElement>('button[data-days]')) {
    preset.addEventListener('click', () => {
      setRange(Number(preset.dataset.days) || DEFAULT_DAYS);
      activate(active);
    });
  }

  setRange(DEFAULT_DAYS);
  if (readKey()) {
    enter().catch((error: unknown) => {
      if (!(error instanceof ApiError && error.status === 401)) showSignin(error instanceof ApiError ? error.message : undefined);
    });
  } else {
    showSignin();
  }
}

start();
