/**
 * Emails to referrers: a new referral (to the referrer), a reward approved (to its
 * beneficiary), a payout paid (to the referrer). Like webhooks, an email is written
 * to an outbox in the same transaction as the change it tells about, so it exists
 * exactly when the change does; emailDelivery.ts sends it. One row per event and
 * recipient (a unique constraint): a retried or repeated event queues nothing more.
 *
 * An email is queued only when the program turned that email on
 * (`settings.emails.on`), and the recipient has an address, is not erased and did
 * not turn that email off (`participants.email_preferences`, set from their portal
 * or an unsubscribe link). The sender checks all of it again when it sends, and
 * sends nothing without SMTP_URL.
 */
import type { Knex } from 'knex';
import type { EmailsResponse } from '../../../shared/responses.ts';
import type { EmailKind, EmailSettings } from '../../../shared/schemas.ts';
import { renderEmail, SAMPLE_FACTS, type RenderedEmail, type RewardFacts } from './emailTemplates.ts';
import { setEmailPreferences } from './emailPreferences.ts';
import type { ProgramRow } from './programs.ts';
import type { RewardRow } from './rewards.ts';
import type { UnsubscribeClaims } from './unsubscribeTokens.ts';

export const EMAIL_KINDS: readonly EmailKind[] = ['referral', 'rewardApproved', 'payoutPaid'];

/** What the outbox keeps for each email: ids and amounts only; names are read when it is sent (erasure reaches them). */
export interface EmailData {
  referral: { referred: string };
  rewardApproved: { reward: RewardFacts };
  payoutPaid: { amount: number; currency: string; reference?: string | null };
}

export interface EmailEvent<K extends EmailKind> {
  /** The recipient: a participant of the program. */
  to: string;
  /** The id of what the email is about (a referral, a reward, a payout item). */
  about: string;
  data: EmailData[K];
}

/**
 * Queues an email about an event, in the caller's transaction. Nothing when the
 * program has that email off, the recipient has no address, was erased or turned
 * that email off; nothing more when this event already queued one for them.
 */
export async function enqueueEmail<K extends EmailKind>(trx: Knex, program: ProgramRow, kind: K, event: EmailEvent<K>): Promise<void> {
  if (!program.settings.emails?.on[kind]) return;
  await trx.raw(
    `insert into email_outbox (program_id, participant_id, kind, event_key, data)
     select ?, p.id, ?, ?, ?::jsonb from participants p
     where p.id = ? and p.program_id = ? and p.email is not null and p.erased_at is null
       and coalesce((p.email_preferences ->> ?)::boolean, true)
     on conflict (program_id, event_key, participant_id) do nothing`,
    [program.id, kind, `${kind}:${event.about}`, JSON.stringify(event.data), event.to, program.id, kind],
  );
}

/** Queues "your reward was approved" for each approved grant among `rewards` (refund adjustments tell nothing). */
export async function emailApprovedRewards(trx: Knex, program: ProgramRow, rewards: RewardRow[]): Promise<void> {
  if (!program.settings.emails?.on.rewardApproved) return;
  for (const reward of rewards) {
    if (reward.status !== 'approved' || reward.reverses) continue;
    const { kind, amount, currency, coupon, percent } = reward;
    await enqueueEmail(trx, program, 'rewardApproved', {
      to: reward.beneficiary_id,
      about: reward.id,
      data: { reward: { kind, amount, currency, coupon, percent } },
    });
  }
}

/**
 * Queues "we paid you" for a paid payout item (a payouts hook: `onItemPaid`).
 * One email per item: paying an item again changes nothing.
 */
export async function emailPayoutPaid(
  trx: Knex,
  program: ProgramRow,
  item: { id: string; participant_id: string; amount: number; currency: string; reference?: string | null },
): Promise<void> {
  await enqueueEmail(trx, program, 'payoutPaid', {
    to: item.participant_id,
    about: item.id,
    data: { amount: item.amount, currency: item.currency, reference: item.reference ?? null },
  });
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A `settings.emails` patch over the stored one: `on` merges too, so turning one email on keeps the others. */
export function mergeEmailSettings(stored: EmailSettings | undefined, patch: unknown): unknown {
  if (!stored || !isRecord(patch)) return patch;
  return { ...stored, ...patch, on: isRecord(patch.on) ? { ...stored.on, ...patch.on } : (patch.on ?? stored.on) };
}

/** `GET /v1/emails`: whether the server can send, the sender, and which emails are on. */
export function emailsOverview(program: ProgramRow, smtpConfigured: boolean): EmailsResponse {
  const settings = program.settings.emails;
  return {
    smtpConfigured,
    from: settings?.from ?? null,
    templates: EMAIL_KINDS.map((template) => ({ template, on: Boolean(settings?.on[template]) })),
  };
}

/** `GET /v1/emails/preview/:template`: the email with sample facts and the program's own name. */
export function previewEmail(program: ProgramRow, kind: EmailKind, publicUrl: string): RenderedEmail {
  const context = {
    programName: program.name,
    name: 'Sam',
    link: `${publicUrl}/r/SAMPLE`,
    unsubscribeUrl: `${publicUrl}/v1/emails/unsubscribe?token=preview`,
  };
  return renderEmail(kind, context, SAMPLE_FACTS[kind]);
}

/** The name of the program a participant belongs to (for the unsubscribe page); null when they are gone. */
export async function programNameOf(db: Knex, participantId: string): Promise<string | null> {
  const row = (await db('participants as p').join('programs as g', 'g.id', 'p.program_id').where('p.id', participantId).first('g.name')) as
    | { name: string }
    | undefined;
  return row?.name ?? null;
}

/** Turns off what the token names: one email, or all of them. Pending ones are dropped when their turn comes. */
export async function unsubscribe(db: Knex, claims: UnsubscribeClaims): Promise<void> {
  const off = claims.scope === 'all' ? EMAIL_KINDS : [claims.scope];
  await setEmailPreferences(db, claims.participantId, Object.fromEntries(off.map((kind) => [kind, false])));
}
