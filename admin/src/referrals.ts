/**
 * Referrals and decisions: who referred whom, and why each attribution,
 * conversion or reward was accepted, rejected or held.
 */
import { badge, decisionBadge } from './badges.ts';
import type { View, ViewContext } from './context.ts';
import { byId, el } from './dom.ts';
import { formatDateTime } from './format.ts';
import { pagedTable } from './table.ts';
import type { CursorPage, Decision, Referral } from './types.ts';

const PAGE_SIZE = 50;

const orDash = (value: string | null | undefined) => (value ? value : '—');

/** Details as short `key: value` pairs (the API sends a small object). */
function detailsText(details: Record<string, unknown>): string {
  return Object.entries(details ?? {})
    .map(([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(', ');
}

function referralRow(referral: Referral): HTMLTableRowElement {
  return el('tr', { 'data-testid': 'referral-row', 'data-referral-id': referral.id }, [
    el('td', { class: 'nowrap' }, formatDateTime(referral.createdAt)),
    el('td', { class: 'strong' }, referral.referrer),
    el('td', {}, referral.referred),
    el('td', {}, orDash(referral.referredEmail)),
    el('td', {}, referral.code ? el('code', {}, referral.code) : '—'),
    el('td', {}, badge(referral.status)),
    el('td', {}, referral.reason ? el('code', {}, referral.reason) : '—'),
    el('td', {}, referral.verified ? badge('verified', 'green') : badge('unverified', 'gray')),
  ]);
}

function decisionRow(decision: Decision): HTMLTableRowElement {
  const details = detailsText(decision.details);
  const outcome = decisionBadge(decision);
  return el(
    'tr',
    {
      'data-testid': 'decision-row',
      'data-reason': decision.reason,
      'data-outcome': decision.outcome,
      'data-weight': outcome.dataset.weight,
    },
    [
      el('td', { class: 'nowrap' }, formatDateTime(decision.createdAt)),
      el('td', {}, decision.subject),
      el('td', { 'data-testid': 'decision-outcome' }, outcome),
      el('td', {}, el('code', {}, decision.reason)),
      el('td', {}, orDash(decision.participant)),
      el('td', {}, orDash(decision.referrer)),
      el('td', {}, decision.code ? el('code', {}, decision.code) : '—'),
      el('td', { class: 'truncate', title: decision.eventId ?? undefined }, orDash(decision.eventId)),
      el('td', { class: 'details', title: details || undefined }, details || '—'),
    ],
  );
}

export function referralsView(ctx: ViewContext): View {
  const status = byId<HTMLSelectElement>('referrals-status');
  const reason = byId<HTMLInputElement>('decisions-reason');
  const outcome = byId<HTMLSelectElement>('decisions-outcome');
  const filter = byId<HTMLFormElement>('decisions-filter');

  const referrals = pagedTable<Referral, string>({
    body: byId<HTMLTableSectionElement>('referrals-body'),
    empty: byId('referrals-empty'),
    more: byId<HTMLButtonElement>('referrals-more'),
    columns: 8,
    renderRow: referralRow,
    onError: ctx.fail,
    async fetchPage(cursor) {
      const page = await ctx.api.get<CursorPage<Referral>>('/v1/referrals', { status: status.value, limit: PAGE_SIZE, cursor });
      return { data: page.data, next: page.nextCursor };
    },
  });

  const decisions = pagedTable<Decision, string>({
    body: byId<HTMLTableSectionElement>('decisions-body'),
    empty: byId('decisions-empty'),
    more: byId<HTMLButtonElement>('decisions-more'),
    columns: 9,
    renderRow: decisionRow,
    onError: ctx.fail,
    async fetchPage(cursor) {
      const page = await ctx.api.get<CursorPage<Decision>>('/v1/decisions', {
        reason: reason.value.trim(),
        outcome: outcome.value,
        limit: PAGE_SIZE,
        cursor,
      });
      return { data: page.data, next: page.nextCursor };
    },
  });

  status.addEventListener('change', () => void referrals.reload());
  outcome.addEventListener('change', () => void decisions.reload());
  const filterByReason = () => {
    if (!reason.checkValidity()) {
      ctx.notify('A reason is written in snake_case, e.g. self_referral.', 'error');
      return;
    }
    void decisions.reload();
  };
  // Picking from the list commits the input (change); typing and Enter submits the form.
  reason.addEventListener('change', filterByReason);
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    filterByReason();
  });

  return {
    load: async () => {
      await Promise.all([referrals.reload(), decisions.reload()]);
    },
    reset() {
      referrals.reset();
      decisions.reset();
    },
  };
}
