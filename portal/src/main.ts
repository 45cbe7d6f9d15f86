/**
 * The referrer's page: loads `/v1/portal/me` with the token from the address,
 * shows the link (copy, QR code, share links), figures, rewards and referrals, and
 * saves payout details and email choices.
 */
import type { PortalPayoutResponse, PortalResponse, RewardBalances } from '../../shared/responses.ts';
import type { PayoutDetails } from '../../shared/schemas.ts';
import { ApiError, loadPortal, savePortal, tokenFromLocation } from './api.ts';
import { drawChart } from './chart.ts';
import { byId, el, flash } from './dom.ts';
import { formatCount, formatDate, formatMoney, formatTime } from './format.ts';
import { reportHeight } from './frame.ts';

const STATUSES = ['pending', 'approved', 'paid'] as const;
const STATUS_LABELS = { pending: 'Pending', approved: 'Approved', paid: 'Paid' } as const;

function showNotice(text: string): void {
  byId('notice').textContent = text;
  byId('notice').hidden = false;
  byId('content').hidden = true;
}

/** What the referrer is told when the API refuses. */
function explain(error: unknown): string {
  if (error instanceof ApiError && error.status === 401) {
    return error.code === 'token_expired'
      ? 'This link has expired. Ask for a new one where you found it.'
      : 'This link is not valid. Ask for a new one where you found it.';
  }
  if (error instanceof ApiError && error.status === 429) return 'Too many requests right now; try again in a minute.';
  return 'Your page could not be loaded just now. Try again in a moment.';
}

function renderLink(data: PortalResponse): void {
  const link = byId<HTMLInputElement>('link');
  link.value = data.link ?? '';
  byId('code').textContent = data.code ?? '—';
  byId<HTMLButtonElement>('copy').disabled = !data.link;
  const share = data.share;
  const services = share
    ? ([
        ['email', 'Email', share.email],
        ['x', 'X', share.x],
        ['linkedin', 'LinkedIn', share.linkedin],
        ['whatsapp', 'WhatsApp', share.whatsapp],
      ] as const)
    : [];
  byId('share-links').replaceChildren(
    ...services.map(([key, label, href]) =>
      el(
        'a',
        {
          href,
          class: 'btn btn-small',
          'data-testid': `share-${key}`,
          // A mail client opens in place; the others in a new tab, told nothing of this page.
          ...(key === 'email' ? {} : { target: '_blank', rel: 'noopener noreferrer' }),
        },
        [label],
      ),
    ),
  );
  const qr = byId<HTMLImageElement>('qr');
  const figure = qr.closest('figure');
  if (figure) figure.hidden = !data.qrSvg;
  if (data.qrSvg) {
    const source = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(data.qrSvg)}`;
    qr.src = source;
    byId('qr-caption').replaceChildren(el('a', { href: source, download: 'referral-qr.svg', class: 'muted' }, ['Download QR code']));
  }
}

/** Copies the link: the async clipboard API, else the selection (older browsers, some frames). */
async function copyLink(): Promise<void> {
  const input = byId<HTMLInputElement>('link');
  let copied = false;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch {
    input.select();
    copied = document.execCommand('copy');
  }
  flash(byId('copy-status'), copied ? 'Copied to your clipboard.' : 'Select the link and copy it by hand.');
}

function balanceTable(kind: string, balances: RewardBalances, testId: string): HTMLElement | null {
  const currencies = [...new Set(STATUSES.flatMap((status) => Object.keys(balances[status])))].sort();
  if (!currencies.length) return null;
  return el('div', { class: 'reward-kind', 'data-testid': testId }, [
    el('h3', {}, [kind]),
    el('table', { class: 'table' }, [
      el('thead', {}, [
        el('tr', {}, [
          el('th', { scope: 'col' }, ['Currency']),
          ...STATUSES.map((s) => el('th', { scope: 'col', class: 'num' }, [STATUS_LABELS[s]])),
        ]),
      ]),
      el(
        'tbody',
        {},
        currencies.map((currency) =>
          el('tr', { 'data-currency': currency }, [
            el('th', { scope: 'row' }, [currency]),
            ...STATUSES.map((status) => {
              const amount = balances[status][currency] ?? 0;
              // A dash for nothing, so the amounts stand out.
              return el('td', { class: amount ? 'num' : 'num muted', 'data-status': status }, [
                amount ? formatMoney(amount, currency) : '—',
              ]);
            }),
          ]),
        ),
      ),
    ]),
  ]);
}

function renderRewards(data: PortalResponse): void {
  const { cash, credit, coupons } = data.rewards;
  const parts: Array<HTMLElement | null> = [balanceTable('Cash', cash, 'rewards-cash'), balanceTable('Credit', credit, 'rewards-credit')];
  if (coupons.length) {
    parts.push(
      el('div', { class: 'reward-kind', 'data-testid': 'rewards-coupons' }, [
        el('h3', {}, ['Coupons']),
        el(
          'ul',
          { class: 'people' },
          coupons.map((coupon) =>
            el('li', {}, [
              coupon.coupon ? el('code', {}, [coupon.coupon]) : el('span', { class: 'muted' }, ['Code shown once approved']),
              el('span', { class: `badge badge-${coupon.status}` }, [STATUS_LABELS[coupon.status]]),
            ]),
          ),
        ),
      ]),
    );
  }
  const shown = parts.filter((part): part is HTMLElement => part !== null);
  byId('rewards').replaceChildren(...(shown.length ? shown : [el('p', { class: 'empty' }, ['No rewards yet.'])]));
}

function renderReferrals(data: PortalResponse): void {
  const { total, data: people } = data.referrals;
  byId('referrals-total').textContent = total ? `${formatCount(total)} in all` : '';
  byId('referrals-empty').hidden = total > 0;
  byId('referrals').replaceChildren(
    ...people.map((person) =>
      el('li', { 'data-testid': 'referral' }, [
        el('span', { class: 'person' }, [person.email ?? 'Someone']),
        el('span', { class: 'person-meta' }, [
          el('span', { class: `badge badge-${person.status === 'held' ? 'pending' : 'approved'}` }, [
            person.status === 'held' ? 'In review' : 'Signed up',
          ]),
          el('time', { datetime: person.createdAt, class: 'muted' }, [formatDate(person.createdAt)]),
        ]),
      ]),
    ),
  );
}

const METHOD_LABELS = { paypal: 'PayPal', wise: 'Wise', stripe_connect: 'Stripe', manual: 'By hand' } as const;
const PAYOUT_STATUS = { pending: ['On its way', 'pending'], paid: ['Paid', 'paid'], failed: ['Failed', 'failed'] } as const;

function renderPayouts(payouts: PortalPayoutResponse[]): void {
  const list = byId('payouts');
  list.hidden = !payouts.length;
  list.replaceChildren(
    ...payouts.map((payout) => {
      const [label, badge] = PAYOUT_STATUS[payout.status];
      const when = payout.status === 'paid' ? payout.updatedAt : payout.createdAt;
      return el('li', { 'data-testid': 'payout', 'data-status': payout.status }, [
        el('span', { class: 'person' }, [formatMoney(payout.amount, payout.currency)]),
        el('span', { class: 'person-meta' }, [
          el('span', { class: 'muted' }, [METHOD_LABELS[payout.method]]),
          el('span', { class: `badge badge-${badge}` }, [label]),
          el('time', { datetime: when, class: 'muted' }, [formatDate(when)]),
        ]),
      ]);
    }),
  );
}

function syncPayoutFields(): void {
  const method = byId<HTMLSelectElement>('payout-method').value;
  byId('payout-email-row').hidden = method !== 'paypal' && method !== 'wise';
  byId('payout-account-row').hidden = method !== 'stripe_connect';
}

function renderPayout(payout: PayoutDetails | null): void {
  byId<HTMLSelectElement>('payout-method').value = payout?.method ?? '';
  byId<HTMLInputElement>('payout-email').value = payout?.email ?? '';
  byId<HTMLInputElement>('payout-account').value = payout?.stripeAccount ?? '';
  syncPayoutFields();
}

function render(data: PortalResponse): void {
  document.title = `Your referrals · ${data.program.name}`;
  byId('program-name').textContent = data.program.name;
  byId('greeting').textContent = data.referrer.name
    ? `Hi ${data.referrer.name.split(/\s+/)[0]}, here are your referrals`
    : 'Your referrals';
  renderLink(data);
  byId('total-clicks').textContent = formatCount(data.stats.clicks);
  byId('total-signups').textContent = formatCount(data.stats.signups);
  byId('total-purchases').textContent = formatCount(data.stats.purchases);
  drawChart(byId('chart'), data.days);
  renderRewards(data);
  renderReferrals(data);
  renderPayout(data.payout);
  renderPayouts(data.payouts);
  const emails = byId<HTMLFormElement>('emails-form');
  for (const name of ['referral', 'rewardApproved', 'payoutPaid'] as const) {
    (emails.elements.namedItem(name) as HTMLInputElement).checked = data.emails[name];
  }
  byId('expires').textContent = `This page's link works until ${formatTime(data.expiresAt)}.`;
  byId('content').hidden = false;
}

function payoutFromForm(): PayoutDetails | null {
  const method = byId<HTMLSelectElement>('payout-method').value as PayoutDetails['method'] | '';
  if (!method) return null;
  const email = byId<HTMLInputElement>('payout-email').value.trim();
  const stripeAccount = byId<HTMLInputElement>('payout-account').value.trim();
  return {
    method,
    ...((method === 'paypal' || method === 'wise') && email ? { email } : {}),
    ...(method === 'stripe_connect' && stripeAccount ? { stripeAccount } : {}),
  };
}

const FIELD_LABELS: Record<string, string> = {
  'payout.email': 'Email',
  'payout.stripeAccount': 'Stripe account',
  'payout.method': 'Method',
};

function start(): void {
  reportHeight();
  const token = tokenFromLocation();
  if (!token) {
    showNotice('This link is not valid. Ask for a new one where you found it.');
    return;
  }
  const main = byId('portal');

  loadPortal(token)
    .then(render)
    .catch((error: unknown) => showNotice(explain(error)))
    .finally(() => main.removeAttribute('aria-busy'));

  byId('copy').addEventListener('click', () => void copyLink());
  byId('link').addEventListener('focus', (event) => (event.target as HTMLInputElement).select());
  byId('payout-method').addEventListener('change', syncPayoutFields);

  byId<HTMLFormElement>('payout-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const errors = byId('payout-errors');
    errors.hidden = true;
    savePortal(token, { payout: payoutFromForm() })
      .then((data) => {
        renderPayout(data.payout);
        flash(byId('payout-status'), 'Saved.');
      })
      .catch((error: unknown) => {
        const fields = error instanceof ApiError ? Object.entries(error.fields) : [];
        errors.replaceChildren(
          ...(fields.length
            ? fields.map(([field, message]) => el('li', {}, [`${FIELD_LABELS[field] ?? field}: ${message}`]))
            : [el('li', {}, [explain(error)])]),
        );
        errors.hidden = false;
      });
  });

  byId<HTMLFormElement>('emails-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const checked = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).checked;
    savePortal(token, {
      emails: { referral: checked('referral'), rewardApproved: checked('rewardApproved'), payoutPaid: checked('payoutPaid') },
    })
      .then(() => flash(byId('emails-status'), 'Saved.'))
      .catch((error: unknown) => flash(byId('emails-status'), explain(error)));
  });
}

start();
