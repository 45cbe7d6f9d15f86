/**
 * Sending the queued emails (emails.ts) through SMTP_URL with nodemailer. Rows are
 * claimed with SKIP LOCKED, so several collector processes never send the same
 * attempt at once; a refused or failed attempt is retried with exponential backoff,
 * up to MAX_EMAIL_ATTEMPTS, then the row is `failed` with the last error kept.
 *
 * Everything that decides whether an email may go is checked again at its turn: the
 * program still has it on, the recipient still has an address, is not erased and
 * did not unsubscribe meanwhile. If not, the row is `skipped` with the reason. Without
 * SMTP_URL every due email is skipped, so setting it later does not send old news.
 *
 * A crash after the SMTP server took a message but before its row says `sent` sends
 * it again later: nothing can tell the two apart.
 */
import type { Knex } from 'knex';
import { createTransport, type Transporter } from 'nodemailer';
import { type EmailKind, type EmailSettings, parseMailbox } from '../../../shared/schemas.ts';
import { primaryCode, referralLink } from './codes.ts';
import type { EmailData } from './emails.ts';
import { oneLine, renderEmail, type EmailFacts } from './emailTemplates.ts';
import type { UnsubscribeTokens } from './unsubscribeTokens.ts';

export const MAX_EMAIL_ATTEMPTS = 8;
const BASE_DELAY_MS = 60_000;
const MAX_DELAY_MS = 6 * 60 * 60 * 1000;
/** A claimed row is out of the due window this long while it is sent (above the SMTP timeouts below). */
const CLAIM_MS = 10 * 60 * 1000;
/** Emails sent side by side in one pass. */
const CONCURRENCY = 4;
/** SMTP timeouts unless SMTP_URL names its own (`?socketTimeout=…`). */
const SMTP_TIMEOUTS = { connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 60_000 };

export interface Mailer {
  /** Null when SMTP_URL is unset: due emails are skipped. */
  transport: Transporter | null;
  /** Base of the unsubscribe and referral links. */
  publicUrl: string;
  tokens: UnsubscribeTokens;
}

/** A nodemailer SMTP transport for SMTP_URL, with the default timeouts above unless the URL sets them. */
export function createMailTransport(smtpUrl: string): Transporter {
  const url = new URL(smtpUrl);
  for (const [name, value] of Object.entries(SMTP_TIMEOUTS)) if (!url.searchParams.has(name)) url.searchParams.set(name, String(value));
  return createTransport(url.toString());
}

export function emailBackoffMs(attempts: number): number {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

interface DueEmail {
  id: string;
  program_id: string;
  participant_id: string;
  kind: EmailKind;
  data: EmailData[EmailKind];
  attempts: number;
  program_name: string;
  program_settings: { emails?: EmailSettings };
  email: string | null;
  name: string | null;
  erased_at: Date | null;
  email_preferences: Partial<Record<EmailKind, boolean>> | null;
}

/** Sends what is due, at most `batch` emails; answers how many rows it took. */
export async function deliverDueEmails(db: Knex, mailer: Mailer, batch = 50): Promise<number> {
  const due = await db.transaction(async (trx) => {
    const rows = (await trx('email_outbox as o')
      .join('programs as g', 'g.id', 'o.program_id')
      .join('participants as p', 'p.id', 'o.participant_id')
      .where('o.status', 'pending')
      .where('o.next_attempt_at', '<=', trx.fn.now())
      .orderBy('o.next_attempt_at')
      .limit(batch)
      .forUpdate('o')
      .skipLocked()
      .select(
        'o.id',
        'o.program_id',
        'o.participant_id',
        'o.kind',
        'o.data',
        'o.attempts',
        'g.name as program_name',
        'g.settings as program_settings',
        'p.email',
        'p.name',
        'p.erased_at',
        'p.email_preferences',
      )) as DueEmail[];
    if (rows.length) {
      await trx('email_outbox')
        .whereIn(
          'id',
          rows.map((row) => row.id),
        )
        .update({ next_attempt_at: new Date(Date.now() + CLAIM_MS) });
    }
    return rows;
  });
  for (let start = 0; start < due.length; start += CONCURRENCY) {
    await Promise.all(due.slice(start, start + CONCURRENCY).map((row) => deliverOne(db, mailer, row)));
  }
  return due.length;
}

/** Why this email must not go out now; null when it may. */
function skipReason(row: DueEmail, mailer: Mailer): string | null {
  if (!mailer.transport) return 'SMTP_URL is not set';
  if (!row.program_settings.emails?.on[row.kind]) return 'the program turned this email off';
  if (row.erased_at) return 'the recipient was erased';
  if (!row.email) return 'the recipient has no email address';
  if (row.email_preferences?.[row.kind] === false) return 'the recipient unsubscribed';
  return null;
}

/** The template's facts, read now (a name erased since the event is not sent). */
async function factsOf(db: Knex, row: DueEmail): Promise<EmailFacts[EmailKind]> {
  if (row.kind === 'referral') {
    const { referred } = row.data as EmailData['referral'];
    const person = (await db('participants').where({ id: referred, program_id: row.program_id }).first('name')) as
      | { name: string | null }
      | undefined;
    return { referredName: person?.name ?? null };
  }
  if (row.kind === 'rewardApproved') return row.data as EmailData['rewardApproved'];
  const payout = row.data as EmailData['payoutPaid'];
  return { amount: payout.amount, currency: payout.currency, reference: payout.reference ?? null };
}

async function deliverOne(db: Knex, mailer: Mailer, row: DueEmail): Promise<void> {
  const skipped = skipReason(row, mailer);
  if (skipped) {
    await db('email_outbox').where({ id: row.id }).update({ status: 'skipped', last_error: skipped });
    return;
  }
  const attempts = row.attempts + 1;
  try {
    const from = parseMailbox(row.program_settings.emails?.from ?? '');
    if (!from) throw new Error('settings.emails.from is not an email address');
    const code = await primaryCode(db, row.participant_id);
    const unsubscribeUrl = `${mailer.publicUrl}/v1/emails/unsubscribe?token=${await mailer.tokens.sign({ participantId: row.participant_id, scope: row.kind })}`;
    const context = {
      programName: row.program_name,
      name: row.name,
      link: code ? referralLink(mailer.publicUrl, code.code) : null,
      unsubscribeUrl,
    };
    const email = renderEmail(row.kind, context, await factsOf(db, row));
    const sent = await (mailer.transport as Transporter).sendMail({
      from: { name: oneLine(from.name ?? row.program_name), address: from.address },
      to: { name: row.name ? oneLine(row.name) : '', address: row.email as string },
      subject: email.subject,
      text: email.text,
      html: email.html,
      // RFC 8058: mail clients show an unsubscribe button that POSTs to this link.
      list: { unsubscribe: unsubscribeUrl },
      headers: { 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click', 'Auto-Submitted': 'auto-generated' },
    });
    await db('email_outbox')
      .where({ id: row.id })
      .update({ status: 'sent', attempts, last_error: null, message_id: sent.messageId ?? null, sent_at: db.fn.now() });
  } catch (caught) {
    const { message, code } = caught as NodeJS.ErrnoException;
    await db('email_outbox')
      .where({ id: row.id })
      .update({
        attempts,
        last_error: (message || code || 'sending failed').slice(0, 500),
        status: attempts >= MAX_EMAIL_ATTEMPTS ? 'failed' : 'pending',
        next_attempt_at: new Date(Date.now() + emailBackoffMs(attempts)),
      });
  }
}
