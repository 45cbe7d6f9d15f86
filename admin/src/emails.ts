/**
 * Emails: which emails to referrers go out (settings.emails.on, and SMTP_URL on the
 * server), and a preview of each with sample data. The HTML preview is rendered in
 * an iframe with an empty sandbox (no script, no navigation of this page, a unique
 * origin) from `srcdoc`; the dashboard's CSP allows exactly the emails' own inline
 * styles. The text version is shown as text.
 */
import type { EmailKind } from '../../shared/schemas.ts';
import type { View, ViewContext } from './context.ts';
import { badge } from './badges.ts';
import { byId, el } from './dom.ts';
import type { EmailPreview, Emails } from './types.ts';

/** What each email is, in the dashboard's words. */
const TEMPLATES: Record<EmailKind, { title: string; when: string }> = {
  referral: { title: 'New referral', when: 'to the referrer, when someone signs up through their link' },
  rewardApproved: { title: 'Reward approved', when: 'to whoever earned the reward, when it is approved' },
  payoutPaid: { title: 'Payout paid', when: 'to the referrer, when a payout to them is marked paid' },
};

function previewCard(template: EmailKind, on: boolean, preview: EmailPreview): HTMLElement {
  const { title, when } = TEMPLATES[template];
  const frame = el('iframe', {
    class: 'email-frame',
    sandbox: '',
    title: `${title} email preview`,
    'data-testid': `email-frame-${template}`,
  });
  frame.srcdoc = preview.html;
  return el('article', { class: 'panel email-card', 'data-testid': `email-${template}`, 'data-on': String(on) }, [
    el('div', { class: 'panel-head' }, [el('h2', {}, title), on ? badge('on', 'green') : badge('off', 'gray')]),
    el('p', { class: 'muted' }, `Sent ${when}.`),
    el('p', { class: 'email-subject' }, [
      el('span', { class: 'muted' }, 'Subject: '),
      el('strong', { 'data-testid': `email-subject-${template}` }, preview.subject),
    ]),
    frame,
    el('details', { class: 'email-text' }, [
      el('summary', {}, 'Text version'),
      el('pre', { 'data-testid': `email-text-${template}` }, preview.text),
    ]),
  ]);
}

export function emailsView(ctx: ViewContext): View {
  const status = byId('emails-status');
  const list = byId('emails-list');
  let generation = 0;

  return {
    async load() {
      const mine = ++generation;
      list.setAttribute('aria-busy', 'true');
      try {
        const overview = await ctx.api.get<Emails>('/v1/emails');
        const previews = await Promise.all(
          overview.templates.map(({ template }) => ctx.api.get<EmailPreview>(`/v1/emails/preview/${template}`)),
        );
        if (mine !== generation) return;
        status.replaceChildren(
          overview.smtpConfigured
            ? el('span', {}, [
                'The server sends email (SMTP_URL is set). ',
                overview.from ? `From: ${overview.from}` : 'Set settings.emails.from to send.',
              ])
            : el('span', { 'data-testid': 'emails-no-smtp' }, 'SMTP_URL is not set on the server: no email goes out until it is.'),
          el('span', { class: 'muted' }, ' Turn emails on in Settings: "emails": { "from": "…", "on": { "referral": true } }.'),
        );
        list.replaceChildren(
          ...overview.templates.map(({ template, on }, index) => previewCard(template, on, previews[index] as EmailPreview)),
        );
      } catch (error) {
        ctx.fail(error);
      } finally {
        if (mine === generation) list.removeAttribute('aria-busy');
      }
    },
    reset() {
      generation++;
      status.replaceChildren();
      list.replaceChildren();
    },
  };
}
