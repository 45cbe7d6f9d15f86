/**
 * Fraud signals that hold a referral for review instead of rejecting it.
 */
import type { Knex } from 'knex';
import type { ProgramSettings } from '../../../shared/schemas.ts';

/** A small built-in list; programs extend it with `fraud.disposableDomains`. */
export const DISPOSABLE_DOMAINS = new Set([
  '10minutemail.com', 'dispostable.com', 'fakeinbox.com', 'getnada.com', 'guerrillamail.com',
  'maildrop.cc', 'mailinator.com', 'mintemail.com', 'mohmal.com', 'sharklasers.com',
  'temp-mail.org', 'tempmail.com', 'throwawaymail.com', 'trashmail.com', 'yopmail.com',
]);

export function isDisposableEmail(email: string | null | undefined, settings: ProgramSettings): boolean {
  const domain = email?.split('@')[1];
  if (!domain) return false;
  return DISPOSABLE_DOMAINS.has(domain) || settings.fraud.disposableDomains.includes(domain);
}

/** More than `velocityMax` referrals for one referrer from one hashed IP within `velocityMinutes`. */
export async function exceedsVelocity(trx: Knex, programId: string, referrerId: string, ipHash: string | null | undefined, settings: ProgramSettings): Promise<boolean> {
  if (!ipHash) return false;
  const since = new Date(Date.now() - settings.fraud.velocityMinutes * 60_000);
  const [row] = await trx('referrals')
    .where({ program_id: programId, referrer_id: referrerId, ip_hash: ipHash })
    .where('created_at', '>=', since)
    .count({ n: '*' });
  return Number(row?.n ?? 0) >= settings.fraud.velocityMax;
}
