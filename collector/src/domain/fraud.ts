/**
 * Fraud signals. A self-referral is rejected; the rest hold a referral for review
 * (attributed, rewards pending) instead of rejecting it, since a shared office
 * address or a family computer is not proof of fraud.
 */
import type { Knex } from 'knex';
import type { ProgramSettings } from '../../../shared/schemas.ts';
import { prepared } from '../storage/db.ts';
import type { ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { recordDecision } from './decisions.ts';
import { holdRewardsOf } from './rewards.ts';

/** A small built-in list; programs extend it with `fraud.disposableDomains`. */
export const DISPOSABLE_DOMAINS = new Set([
  '10minutemail.com',
  'dispostable.com',
  'fakeinbox.com',
  'getnada.com',
  'guerrillamail.com',
  'maildrop.cc',
  'mailinator.com',
  'mintemail.com',
  'mohmal.com',
  'sharklasers.com',
  'temp-mail.org',
  'tempmail.com',
  'throwawaymail.com',
  'trashmail.com',
  'yopmail.com',
]);

export function isDisposableEmail(email: string | null | undefined, settings: ProgramSettings): boolean {
  const domain = email?.split('@')[1];
  if (!domain) return false;
  return DISPOSABLE_DOMAINS.has(domain) || settings.fraud.disposableDomains.includes(domain);
}

/**
 * The referrer is the customer: the same participant, the same normalized email
 * (`email_key`: `+tag`, Gmail dots and googlemail folded), or a visitor id the
 * referrer converted with or was referred with themselves.
 */
export async function isSelfReferral(trx: Knex, referrer: ParticipantRow, referred: ParticipantRow, vid?: string): Promise<boolean> {
  if (referrer.id === referred.id) return true;
  if (referrer.email_key && referrer.email_key === referred.email_key) return true;
  if (!vid) return false;
  const result = await prepared(
    trx,
    'vid_of_referrer',
    `select exists (select 1 from conversions where participant_id = ?::uuid and vid = ?)
         or exists (select 1 from referrals where referred_id = ?::uuid and vid = ?) as used`,
    [referrer.id, vid, referrer.id, vid],
  );
  return Boolean((result.rows[0] as { used: boolean }).used);
}

/**
 * Why a referral that passed every check is held for review instead of made outright,
 * in this order: more than `velocityMax` referrals for one referrer from one hashed IP
 * within `velocityMinutes` (velocity); another customer of the program shares this
 * one's normalized email, or another referred customer came from the same visitor id
 * (duplicate identity: several "new" customers behind one identity); a disposable
 * email domain. The first two are read in one statement, each only when it can apply.
 */
export async function reviewReason(
  trx: Knex,
  programId: string,
  referrerId: string,
  referred: ParticipantRow,
  hint: { ipHash?: string | null | undefined; vid?: string | undefined },
  settings: ProgramSettings,
): Promise<'velocity' | 'duplicate_identity' | 'disposable_email' | undefined> {
  const velocity = Boolean(hint.ipHash);
  const identity = Boolean(referred.email_key || hint.vid);
  if (velocity || identity) {
    const since = new Date(Date.now() - settings.fraud.velocityMinutes * 60_000);
    const result = await prepared(trx, 'review_reason', REVIEW_REASON_SQL, [
      velocity,
      programId,
      referrerId,
      hint.ipHash ?? null,
      since,
      settings.fraud.velocityMax,
      identity,
      programId,
      referred.email_key ?? null,
      referred.id,
      programId,
      hint.vid ?? null,
      referred.id,
    ]);
    const row = result.rows[0] as { velocity: boolean; duplicate: boolean };
    if (row.velocity) return 'velocity';
    if (row.duplicate) return 'duplicate_identity';
  }
  return isDisposableEmail(referred.email, settings) ? 'disposable_email' : undefined;
}

/** A check that does not apply is not run: `false and (…)` never evaluates its subquery. */
const REVIEW_REASON_SQL = `select
    ?::boolean and (select count(*) from referrals
      where program_id = ?::uuid and referrer_id = ?::uuid and ip_hash = ? and created_at >= ?) >= ?::int as velocity,
    ?::boolean and (exists (select 1 from participants where program_id = ?::uuid and email_key = ? and id <> ?::uuid)
      or exists (select 1 from referrals where program_id = ?::uuid and vid = ? and referred_id <> ?::uuid)) as duplicate`;

/**
 * A participant converting with visitor id `vid` shows that the visitor is them: a
 * customer they referred from that same visitor id referred themselves. Those
 * referrals are held as `self_referral` and their rewards go back to review.
 */
export async function revealSelfReferrals(trx: Knex, program: ProgramRow, participant: ParticipantRow, vid: string): Promise<void> {
  const result = await prepared(
    trx,
    'reveal_self_referrals',
    `update referrals set status = 'held', reason = 'self_referral'
     where program_id = ?::uuid and vid = ? and referrer_id = ?::uuid and status = 'attributed' returning id, referred_id`,
    [program.id, vid, participant.id],
  );
  for (const referral of result.rows as Array<{ id: string; referred_id: string }>) {
    await recordDecision(trx, {
      programId: program.id,
      subject: 'attribution',
      outcome: 'held',
      reason: 'self_referral',
      participantId: referral.referred_id,
      referrerId: participant.id,
      details: { vid },
    });
    await holdRewardsOf(trx, referral.id, 'self_referral');
  }
}
