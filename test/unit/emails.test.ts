/**
 * Emails, the parts that need no database: SMTP_URL and sender validation, the
 * templates' escaping and money, and the style values the dashboard's CSP hashes.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../collector/src/config.ts';
import {
  EMAIL_STYLE_SOURCES,
  EMAIL_STYLES,
  escapeHtml,
  formatMoney,
  oneLine,
  renderEmail,
} from '../../collector/src/domain/emailTemplates.ts';
import { EmailSettingsSchema, parseMailbox } from '../../shared/schemas.ts';

describe('SMTP_URL', () => {
  it.each(['smtp://127.0.0.1:2525', 'smtps://user:p%40ss@smtp.example.com:465', 'smtp://smtp.example.com?socketTimeout=5000'])(
    'accepts %s',
    (url) => {
      expect(loadConfig({ SMTP_URL: url }).smtpUrl).toBe(url);
    },
  );

  it.each(['http://smtp.example.com', 'smtp.example.com:25', 'mailto:a@b.example'])('refuses %s', (url) => {
    try {
      loadConfig({ SMTP_URL: url });
      throw new Error('accepted');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual(['SMTP_URL: must be an smtp:// or smtps:// URL']);
    }
  });

  it('is optional', () => {
    expect(loadConfig({}).smtpUrl).toBeUndefined();
  });
});

describe('settings.emails.from', () => {
  it.each([
    ['rewards@acme.example', { name: null, address: 'rewards@acme.example' }],
    ['Acme Rewards <rewards@acme.example>', { name: 'Acme Rewards', address: 'rewards@acme.example' }],
    ['"Acme, Inc." <rewards@acme.example>', { name: 'Acme, Inc.', address: 'rewards@acme.example' }],
    ['  Ünïcode Shop   <shop@acme.example>  ', { name: 'Ünïcode Shop', address: 'shop@acme.example' }],
  ])('reads %j', (value, expected) => {
    expect(parseMailbox(value)).toEqual(expected);
    expect(EmailSettingsSchema.safeParse({ from: value }).success).toBe(true);
  });

  it.each([
    '',
    'not an address',
    'Acme <no-at-sign>',
    'a@b.example, c@d.example',
    'Acme\r\nBcc: victim@example.com <a@b.example>',
    'Acme <a@b.example> <c@d.example>',
    '<a@b.example',
  ])('refuses %j', (value) => {
    expect(parseMailbox(value)).toBeNull();
    expect(EmailSettingsSchema.safeParse({ from: value }).success).toBe(false);
  });

  it('turns each email on only when told', () => {
    expect(EmailSettingsSchema.parse({ from: 'a@b.example' })).toEqual({ from: 'a@b.example', on: {} });
    expect(EmailSettingsSchema.safeParse({ from: 'a@b.example', on: { birthday: true } }).success).toBe(false);
  });
});

describe('templates', () => {
  const context = { programName: 'Acme', name: 'Sam', link: 'https://c.example/r/ABC', unsubscribeUrl: 'https://c.example/u?token=t' };

  it('escapes what people and operators wrote', () => {
    expect(escapeHtml(`<a href="x">Tom & Jerry's</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;');
    const email = renderEmail('referral', { ...context, programName: '<b>Acme</b>', name: '<i>Sam</i>' }, { referredName: '<img src=x>' });
    expect(email.html).not.toMatch(/<(b|i|img)[\s>]/);
    expect(email.html).toContain('&lt;img src=x&gt; just signed up through your link');
    expect(email.text).toContain('Hi <i>Sam</i>,');
  });

  it('keeps names on one line (no header or layout tricks)', () => {
    expect(oneLine('Ann\r\nBcc: x@y.example\u0000')).toBe('Ann Bcc: x@y.example');
    expect(oneLine('x'.repeat(300))).toHaveLength(100);
    expect(renderEmail('referral', context, { referredName: 'Ann\nEvil' }).subject).toBe('Acme: Ann Evil just signed up through your link');
  });

  it('writes money in the currency’s own minor units', () => {
    expect(formatMoney(2500, 'USD')).toBe('$25.00');
    expect(formatMoney(500, 'JPY')).toBe('¥500');
    expect(formatMoney(1234, 'KWD')).toMatch(/^KWD\s1\.234$/); // three decimals; Intl puts a no-break space
    const coupon = renderEmail('rewardApproved', context, {
      reward: { kind: 'coupon', amount: 0, currency: null, coupon: 'SAVE10', percent: 10 },
    });
    expect(coupon.subject).toBe('Acme: Your reward was approved: the coupon SAVE10 (10% off)');
  });

  it('offers the link again only where it helps, and always the unsubscribe link', () => {
    const payout = renderEmail('payoutPaid', context, { amount: 5000, currency: 'EUR', reference: null });
    expect(payout.text).not.toContain(context.link);
    expect(payout.text).toContain(`Unsubscribe from these emails: ${context.unsubscribeUrl}`);
    expect(renderEmail('referral', { ...context, link: null }, { referredName: null }).subject).toBe(
      'Acme: Someone just signed up through your link',
    );
  });

  it('uses only the style values the dashboard CSP hashes, written so their hash is the attribute value', () => {
    for (const style of Object.values(EMAIL_STYLES)) expect(style).not.toMatch(/[&<>"']/);
    const html = renderEmail('referral', context, { referredName: 'Ann' }).html;
    const used = [...html.matchAll(/style="([^"]*)"/g)].map((match) => match[1] as string);
    expect(used.length).toBeGreaterThan(5);
    for (const style of used) {
      expect(EMAIL_STYLE_SOURCES).toContain(`'sha256-${createHash('sha256').update(style).digest('base64')}'`);
    }
  });
});
