/**
 * Attribution: who referred a new customer. One command serves browser events
 * (unverified) and server conversions (verified). Each referred participant is
 * attributed at most once (a unique constraint decides under concurrency), and every
 * outcome is recorded as a decision.
 */
import type { Knex } from 'knex';
import { prepared, rowFromJson } from '../storage/db.ts';
import type { AttributionStatus } from '../../../shared/types.ts';
import type { CodeRow } from './codes.ts';
import { recordDecision, type DecisionReason } from './decisions.ts';
import { exceedsVelocity, isDisposableEmail } from './fraud.ts';
import type { ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { bumpStats } from './rollups.ts';
import { enqueueWebhook } from './webhooks.ts';

export interface ReferralRow {
  id: string;
  program_id: string;
  referrer_id: string;
  referred_id: string;
  code_id: string | null;
  vid: string | null;
  status: 'attributed' | 'held';
  reason: string | null;
  verified: boolean;
  ip_hash: string | null;
  created_at: Date;
}

export interface AttributionHint {
  code?: string | undefined;
  vid?: string | undefined;
  ipHash?: string | undefined;
  verified: boolean;
  /** Created in this very transaction: nobody else can see them, let alone be referred by them. */
  newParticipant?: boolean;
  /** `code` already looked up, with its owner (null: no such code), by the caller's own statement. */
  codeWithOwner?: CodeWithOwner | null;
}

export type CodeWithOwner = { code: CodeRow; owner: ParticipantRow };

/** Reads `codeWithOwner` back from a statement's `row_to_json(code)` and `row_to_json(owner)` columns. */
export function codeWithOwnerFrom(row: { code: Record<string, unknown> | null; owner: Record<string, unknown> | null }): CodeWithOwner | null {
  const code = rowFromJson<CodeRow>(row.code, ['created_at', 'disabled_at']);
  const owner = rowFromJson<ParticipantRow>(row.owner, ['created_at']);
  return code && owner ? { code, owner } : null;
}

/** The query selecting `code` (lower-cased parameter) with its owner as `code` and `owner` JSON columns. */
export const CODE_WITH_OWNER_SQL = `select row_to_json(c.*) as code, row_to_json(p.*) as owner from codes c join participants p on p.id = c.participant_id where lower(c.code) = lower(?) limit 1`;

export interface Attribution {
  status: Exclude<AttributionStatus, 'held'>;
  reason?: DecisionReason;
  /** The referrer's externalId. */
  referrer?: string;
  /** True when the referral is held for review (velocity, disposable email). */
  held?: boolean;
  /** The referral this conversion belongs to, if any (for rewards). */
  referral?: ReferralRow;
}

type Candidate = { referrer: ParticipantRow; code: CodeRow | null } | { reject: DecisionReason; code?: string };

const DAY_MS = 86_400_000;

/** A code and the participant it belongs to, in one query. */
async function findCodeWithOwner(trx: Knex, code: string): Promise<CodeWithOwner | undefined> {
  const result = await prepared(trx, 'code_with_owner', CODE_WITH_OWNER_SQL, [code]);
  const row = result.rows[0] as { code: Record<string, unknown>; owner: Record<string, unknown> } | undefined;
  return row ? (codeWithOwnerFrom(row) ?? undefined) : undefined;
}

async function participantById(trx: Knex, id: string): Promise<ParticipantRow> {
  return (await trx('participants').where({ id }).first()) as ParticipantRow;
}

export async function referralOf(trx: Knex, participantId: string): Promise<ReferralRow | undefined> {
  const result = await prepared(trx, 'referral_of', `select * from referrals where referred_id = ? limit 1`, [participantId]);
  return result.rows[0] as ReferralRow | undefined;
}

/** Finds the referrer from the code given, else from the visitor's clicks inside the window. */
async function findCandidate(trx: Knex, program: ProgramRow, hint: AttributionHint): Promise<Candidate> {
  const windowStart = new Date(Date.now() - program.settings.windowDays * DAY_MS);
  if (hint.code) {
    const found = hint.codeWithOwner !== undefined ? (hint.codeWithOwner ?? undefined) : await findCodeWithOwner(trx, hint.code);
    const code = found?.code;
    if (!found || !code || code.program_id !== program.id) return { reject: 'unknown_code', code: hint.code };
    if (code.disabled_at) return { reject: 'code_disabled', code: code.code };
    if (hint.vid) {
      const clicks = await trx('clicks')
        .where({ program_id: program.id, vid: hint.vid, code_id: code.id })
        .max({ last: 'created_at' })
        .first();
      const last = clicks?.last as Date | null | undefined;
      if (last && last < windowStart) return { reject: 'outside_window', code: code.code };
    }
    return { referrer: found.owner, code };
  }
  if (hint.vid) {
    const direction = program.settings.attribution === 'first' ? 'asc' : 'desc';
    const click = (await trx('clicks')
      .where({ program_id: program.id, vid: hint.vid })
      .where('created_at', '>=', windowStart)
      .orderBy('created_at', direction)
      .first('code_id')) as { code_id: string } | undefined;
    if (click) {
      const code = (await trx('codes').where({ id: click.code_id }).first()) as CodeRow;
      if (code.disabled_at) return { reject: 'code_disabled', code: code.code };
      return { referrer: await participantById(trx, code.participant_id), code };
    }
    const older = await trx('clicks').where({ program_id: program.id, vid: hint.vid }).first('id');
    if (older) return { reject: 'outside_window' };
  }
  return { reject: 'no_referral_data' };
}

/** Same participant, same normalised email, or a visitor id the referrer used themselves. */
async function isSelfReferral(trx: Knex, referrer: ParticipantRow, referred: ParticipantRow, vid?: string): Promise<boolean> {
  if (referrer.id === referred.id) return true;
  if (referrer.email && referred.email && referrer.email === referred.email) return true;
  if (!vid) return false;
  const used = await trx('conversions').where({ program_id: referrer.program_id, participant_id: referrer.id, vid }).first('id');
  return Boolean(used);
}

/** The participant's chain of referrers, nearest first. */
async function ancestorsOf(trx: Knex, participantId: string): Promise<string[]> {
  const result = await trx.raw(
    `with recursive chain(id, depth) as (
       select referrer_id, 1 from referrals where referred_id = ?
       union all
       select r.referrer_id, c.depth + 1 from referrals r join chain c on r.referred_id = c.id where c.depth < 1000
     ) select id from chain order by depth`,
    [participantId],
  );
  return (result.rows as Array<{ id: string }>).map((row) => row.id);
}

/**
 * A referrer cannot be attributed to someone up their own chain of referrers.
 * Concurrent attributions could each pass the check and close a loop together, so
 * the two trees being joined are locked first (the new customer, who has no referrer
 * yet, and the root of the referrer's chain), then the chain is read again.
 */
async function wouldCycle(trx: Knex, referrer: ParticipantRow, referred: ParticipantRow): Promise<boolean> {
  const root = (await ancestorsOf(trx, referrer.id)).at(-1) ?? referrer.id;
  const [first, second] = [referred.id, root].sort() as [string, string];
  // One round trip; the select list is evaluated left to right, so locks are taken in order.
  await trx.raw('select pg_advisory_xact_lock(hashtext(?)), pg_advisory_xact_lock(hashtext(?))', [first, second]);
  return (await ancestorsOf(trx, referrer.id)).includes(referred.id);
}

async function existing(trx: Knex, referral: ReferralRow, hint: AttributionHint): Promise<Attribution> {
  if (hint.verified && !referral.verified) {
    await trx('referrals').where({ id: referral.id }).update({ verified: true });
    referral = { ...referral, verified: true };
  }
  const referrer = await participantById(trx, referral.referrer_id);
  return { status: 'existing', referrer: referrer.external_id, referral, ...(referral.status === 'held' ? { held: true } : {}) };
}

/**
 * Attributes `participant` (the customer converting now) to a referrer, at most once.
 * Runs inside the conversion's transaction.
 */
export async function attribute(
  trx: Knex,
  program: ProgramRow,
  participant: ParticipantRow,
  hint: AttributionHint,
  conversionId: string,
): Promise<Attribution> {
  const decide = (outcome: 'accepted' | 'rejected' | 'held', reason: DecisionReason, extra: { referrerId?: string; code?: string | null } = {}) =>
    recordDecision(trx, {
      programId: program.id,
      subject: 'attribution',
      outcome,
      reason,
      participantId: participant.id,
      referrerId: extra.referrerId ?? null,
      code: extra.code ?? hint.code ?? null,
      conversionId,
      details: hint.vid ? { vid: hint.vid } : undefined,
    });

  // A customer created in this transaction cannot have been referred yet.
  const current = hint.newParticipant ? undefined : await referralOf(trx, participant.id);
  if (current) {
    if (hint.code || hint.vid) await decide('rejected', 'already_attributed', { referrerId: current.referrer_id });
    return existing(trx, current, hint);
  }

  const candidate = await findCandidate(trx, program, hint);
  if ('reject' in candidate) {
    if (candidate.reject === 'no_referral_data') return { status: 'none', reason: 'no_referral_data' };
    await decide('rejected', candidate.reject, { code: candidate.code });
    return { status: 'rejected', reason: candidate.reject };
  }
  const { referrer, code } = candidate;
  const reject = async (reason: DecisionReason): Promise<Attribution> => {
    await decide('rejected', reason, { referrerId: referrer.id, code: code?.code });
    return { status: 'rejected', reason };
  };
  if (await isSelfReferral(trx, referrer, participant, hint.vid)) return reject('self_referral');
  if (!hint.newParticipant && (await wouldCycle(trx, referrer, participant))) return reject('referral_cycle');

  let holdReason: DecisionReason | undefined;
  if (await exceedsVelocity(trx, program.id, referrer.id, hint.ipHash, program.settings)) holdReason = 'velocity';
  else if (isDisposableEmail(participant.email, program.settings)) holdReason = 'disposable_email';

  // The referral, the customer's referredBy and the decision, in one statement; all or
  // nothing happens when another request attributed this customer first (it wins).
  const inserted = await prepared(
    trx,
    'attribute',
    `with r as (
       insert into referrals (program_id, referrer_id, referred_id, code_id, vid, status, reason, verified, ip_hash)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (referred_id) do nothing returning *
     ), p as (
       update participants set referred_by = ? where id = ? and exists (select 1 from r)
     ), d as (
       insert into decisions (program_id, subject, outcome, reason, participant_id, referrer_id, code, conversion_id, details)
       select ?, 'attribution', ?, ?, ?, ?, ?, ?, ?::jsonb where exists (select 1 from r)
     ) select * from r`,
    [
      program.id, referrer.id, participant.id, code?.id ?? null, hint.vid ?? null, holdReason ? 'held' : 'attributed', holdReason ?? null, hint.verified, hint.ipHash ?? null,
      referrer.id, participant.id,
      program.id, holdReason ? 'held' : 'accepted', holdReason ?? 'attributed', participant.id, referrer.id, code?.code ?? hint.code ?? null, conversionId,
      hint.vid ? JSON.stringify({ vid: hint.vid }) : null,
    ],
  );
  const referral = inserted.rows[0] as ReferralRow | undefined;
  if (!referral) {
    const winner = (await referralOf(trx, participant.id)) as ReferralRow;
    await decide('rejected', 'already_attributed', { referrerId: winner.referrer_id });
    return existing(trx, winner, hint);
  }
  await bumpStats(trx, [{ programId: program.id, participantId: referrer.id, signups: 1 }]);
  await enqueueWebhook(trx, program, 'referral.created', {
    referral: {
      id: referral.id,
      referrer: referrer.external_id,
      referred: participant.external_id,
      code: code?.code ?? null,
      status: referral.status,
      reason: referral.reason,
      verified: referral.verified,
      createdAt: referral.created_at.toISOString(),
    },
  });
  return {
    status: 'attributed',
    referrer: referrer.external_id,
    referral,
    ...(holdReason ? { held: true, reason: holdReason } : {}),
  };
}
