/**
 * Which emails a referrer wants: set in their portal (`PATCH /v1/portal/me
 * { emails }`), stored in `participants.email_preferences`. Every email is on
 * unless turned off, so the mailer sends a kind of email when `emailPreferencesOf`
 * says true for it.
 */
import type { Knex } from 'knex';
import type { EmailPreferences } from '../../../shared/schemas.ts';

export type EmailKind = keyof EmailPreferences;
export type ResolvedEmailPreferences = Required<EmailPreferences>;

const ALL_ON: ResolvedEmailPreferences = { referral: true, rewardApproved: true, payoutPaid: true };

/** What is stored, with the defaults filled in. */
export const resolveEmailPreferences = (stored: EmailPreferences | null | undefined): ResolvedEmailPreferences => ({
  ...ALL_ON,
  ...stored,
});

/** The participant's email choices (all on when they made none). */
export async function emailPreferencesOf(db: Knex, participantId: string): Promise<ResolvedEmailPreferences> {
  const row = (await db('participants').where({ id: participantId }).first('email_preferences')) as
    | { email_preferences: EmailPreferences | null }
    | undefined;
  return resolveEmailPreferences(row?.email_preferences);
}

/** Merges `changes` over the stored choices (keys left out stay as they were); returns the result. */
export async function setEmailPreferences(db: Knex, participantId: string, changes: EmailPreferences): Promise<ResolvedEmailPreferences> {
  const [row] = (await db('participants')
    .where({ id: participantId })
    .update({ email_preferences: db.raw(`coalesce(email_preferences, '{}'::jsonb) || ?::jsonb`, [JSON.stringify(changes)]) })
    .returning('email_preferences')) as Array<{ email_preferences: EmailPreferences | null }>;
  return resolveEmailPreferences(row?.email_preferences);
}
