/**
 * The emails to referrers, as text and HTML. Pure functions of their facts: the
 * outbox (emails.ts) reads the facts when it sends, the dashboard's preview passes
 * sample ones. Every value that comes from a person or an operator (names, the
 * program's name, codes) is escaped in the HTML; the text version has no markup to
 * break, only line breaks, which names never carry (`oneLine`).
 *
 * The HTML styles inline (style attributes), as mail clients want; the few style
 * values are constants so the dashboard's CSP can allow exactly them for the preview
 * (`EMAIL_STYLES`, hashed in routes/admin.ts).
 */
import { createHash } from 'node:crypto';
import type { EmailKind } from '../../../shared/schemas.ts';

/** What every email knows about its recipient and its program. */
export interface EmailContext {
  programName: string;
  /** The recipient's name, when the host gave one. */
  name: string | null;
  /** The recipient's referral link, to share again (null: they have no live code). */
  link: string | null;
  /** Their one-click unsubscribe link for this kind of email. */
  unsubscribeUrl: string;
}

/** A reward as an email describes it (money in integer minor units). */
export interface RewardFacts {
  kind: 'cash' | 'credit' | 'coupon';
  amount: number;
  currency: string | null;
  coupon?: string | null;
  percent?: number | null;
}

/** What each email is about. */
export interface EmailFacts {
  referral: { referredName: string | null };
  rewardApproved: { reward: RewardFacts };
  payoutPaid: { amount: number; currency: string; reference: string | null };
}

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

/** The style attribute values the HTML uses, and nothing else (the preview's CSP allows exactly these). */
export const EMAIL_STYLES = {
  body: 'margin:0;padding:24px 12px;background:#f4f4f6',
  card: 'max-width:560px;margin:0 auto;padding:28px 24px;background:#ffffff;border-radius:8px;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#1d1d1f',
  program: 'margin:0 0 16px;font-size:13px;font-weight:600;letter-spacing:.04em;text-transform:uppercase;color:#5f5f66',
  heading: 'margin:0 0 16px;font-size:22px;line-height:1.3',
  text: 'margin:0 0 14px',
  button: 'display:inline-block;padding:10px 18px;border-radius:6px;background:#0b57d0;color:#ffffff;font-weight:600;text-decoration:none',
  url: 'margin:8px 0 0;font-size:13px;color:#5f5f66;word-break:break-all',
  footer: 'margin:28px 0 0;padding-top:16px;border-top:1px solid #e3e3e8;font-size:12px;color:#5f5f66',
  footerLink: 'color:#5f5f66',
} as const;

/**
 * CSP sources allowing exactly the style attributes above (with 'unsafe-hashes'):
 * an HTML preview in a sandboxed srcdoc iframe runs under its parent page's CSP.
 */
export const EMAIL_STYLE_SOURCES: readonly string[] = Object.values(EMAIL_STYLES).map(
  (style) => `'sha256-${createHash('sha256').update(style).digest('base64')}'`,
);

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and attribute values. */
export const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] as string);

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
const CONTROL_OR_SPACE = /[\s\u0000-\u001f\u007f]+/g;

/** A name or label on one line: control characters and runs of spaces become one space; at most 100 characters. */
export function oneLine(value: string): string {
  return value.replace(CONTROL_OR_SPACE, ' ').trim().slice(0, 100);
}

/** Minor units as the currency writes them: 2500 USD → $25.00, 500 JPY → ¥500. */
export function formatMoney(amount: number, currency: string): string {
  const format = new Intl.NumberFormat('en', { style: 'currency', currency });
  return format.format(amount / 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2));
}

function describeReward(reward: RewardFacts): string {
  if (reward.kind === 'coupon') {
    const off = reward.percent
      ? ` (${reward.percent}% off)`
      : reward.currency && reward.amount
        ? ` (${formatMoney(reward.amount, reward.currency)} off)`
        : '';
    return reward.coupon ? `the coupon ${oneLine(reward.coupon)}${off}` : `a coupon${off}`;
  }
  const value = reward.currency ? formatMoney(reward.amount, reward.currency) : String(reward.amount);
  return reward.kind === 'credit' ? `${value} in credit` : value;
}

/** One email's words: a headline, paragraphs, and whether to offer the link again. */
interface Words {
  headline: string;
  paragraphs: string[];
  shareAgain: boolean;
}

function wordsFor<K extends EmailKind>(kind: K, context: EmailContext, facts: EmailFacts[K]): Words {
  const program = oneLine(context.programName);
  if (kind === 'referral') {
    const { referredName } = facts as EmailFacts['referral'];
    const who = referredName ? oneLine(referredName) : 'Someone';
    return {
      headline: `${who} just signed up through your link`,
      paragraphs: [`Thank you for telling people about ${program}: ${who} joined through your referral link.`],
      shareAgain: true,
    };
  }
  if (kind === 'rewardApproved') {
    const reward = describeReward((facts as EmailFacts['rewardApproved']).reward);
    return {
      headline: `Your reward was approved: ${reward}`,
      paragraphs: [`${program} approved your reward of ${reward}. Thank you for spreading the word.`],
      shareAgain: true,
    };
  }
  const payout = facts as EmailFacts['payoutPaid'];
  const amount = formatMoney(payout.amount, payout.currency);
  return {
    headline: `We paid you ${amount}`,
    paragraphs: [`${program} sent you ${amount} for your referrals${payout.reference ? ` (reference ${oneLine(payout.reference)})` : ''}.`],
    shareAgain: false,
  };
}

/** Subject, text and HTML of one email. */
export function renderEmail<K extends EmailKind>(kind: K, context: EmailContext, facts: EmailFacts[K]): RenderedEmail {
  const program = oneLine(context.programName);
  const words = wordsFor(kind, context, facts);
  const greeting = context.name ? `Hi ${oneLine(context.name)},` : 'Hi,';
  const share = words.shareAgain && context.link ? context.link : null;
  const footer = `You get this email because you refer people to ${program}.`;

  const text = [
    greeting,
    '',
    ...words.paragraphs.flatMap((paragraph) => [paragraph, '']),
    ...(share ? ['Share your link again:', share, ''] : []),
    '-- ',
    footer,
    `Unsubscribe from these emails: ${context.unsubscribeUrl}`,
    '',
  ].join('\n');

  const s = EMAIL_STYLES;
  const p = (content: string) => `<p style="${s.text}">${content}</p>`;
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(words.headline)}</title>
</head>
<body style="${s.body}">
<div style="${s.card}">
<p style="${s.program}">${escapeHtml(program)}</p>
<h1 style="${s.heading}">${escapeHtml(words.headline)}</h1>
${p(escapeHtml(greeting))}
${words.paragraphs.map((paragraph) => p(escapeHtml(paragraph))).join('\n')}
${share ? `<p style="${s.text}"><a href="${escapeHtml(share)}" style="${s.button}">Share your link again</a></p>\n<p style="${s.url}">${escapeHtml(share)}</p>` : ''}
<p style="${s.footer}">${escapeHtml(footer)} <a href="${escapeHtml(context.unsubscribeUrl)}" style="${s.footerLink}">Unsubscribe from these emails</a>.</p>
</div>
</body>
</html>
`;
  return { subject: `${program}: ${words.headline}`, text, html };
}

/** Made-up facts for the dashboard's preview of each email. */
export const SAMPLE_FACTS: EmailFacts = {
  referral: { referredName: 'Ann' },
  rewardApproved: { reward: { kind: 'cash', amount: 2500, currency: 'USD' } },
  payoutPaid: { amount: 5000, currency: 'USD', reference: 'PAYOUT-1042' },
};
