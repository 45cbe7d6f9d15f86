/**
 * The referrer portal: a referrer's own view of their link, figures, rewards and
 * referrals, and the few things they may change (payout details, email choices).
 * Everything is read through a session opened from a portal token, so a token
 * reads and changes only its own participant of its own program.
 */
import type { Knex } from 'knex';
import QRCode from 'qrcode';
import type {
  PortalCouponResponse,
  PortalDayResponse,
  PortalPayoutResponse,
  PortalReferralResponse,
  PortalResponse,
  PortalShareLinks,
  PortalTokenResponse,
  RewardBalances,
} from '../../../shared/responses.ts';
import { PORTAL_TTL_SECONDS, type PortalTokenCreate, type PortalUpdate } from '../../../shared/schemas.ts';
import type { MoneyByCurrency } from '../../../shared/types.ts';
import { notFound } from '../errors.ts';
import { primaryCode, referralLink } from './codes.ts';
import { emailPreferencesOf, setEmailPreferences } from './emailPreferences.ts';
import { participantStats, type ParticipantRow } from './participants.ts';
import { payoutDetailsOf, setPayoutDetails } from './payoutDetails.ts';
import { invalidPortalToken, type PortalTokens } from './portalTokens.ts';
import type { ProgramRow } from './programs.ts';

/** Days of figures the portal shows. */
export const PORTAL_DAYS = 30;
/** Newest referrals and coupons listed. */
const LIST_LIMIT = 100;

/** Who a valid token speaks for. */
export interface PortalSession {
  participant: ParticipantRow;
  program: ProgramRow;
  expiresAt: Date;
}

/** The participant's portal link, if they exist here and are not erased (else 404). */
export async function issuePortalLink(
  db: Knex,
  tokens: PortalTokens,
  program: ProgramRow,
  externalId: string,
  input: PortalTokenCreate,
  publicUrl: string,
): Promise<PortalTokenResponse> {
  const participant = (await db('participants')
    .where({ program_id: program.id, external_id: externalId })
    .whereNull('erased_at')
    .first('id')) as { id: string } | undefined;
  if (!participant) throw notFound('Participant');
  // Whole seconds: the token carries its expiry in seconds, and so does the answer.
  const seconds = Math.floor(Date.now() / 1000) + (input?.ttlSeconds ?? PORTAL_TTL_SECONDS.default);
  const expiresAt = new Date(seconds * 1000);
  const token = await tokens.sign({ participantId: participant.id, programId: program.id, expiresAt });
  return { url: portalUrl(publicUrl, token), token, expiresAt: expiresAt.toISOString() };
}

export const portalUrl = (publicUrl: string, token: string) => `${publicUrl}/portal/${token}`;

/**
 * The session a token opens: its participant and program, read afresh. An erased
 * participant's tokens stop working (401, as for any token that is not valid).
 */
export async function openPortal(db: Knex, tokens: PortalTokens, token: string): Promise<PortalSession> {
  const claims = await tokens.verify(token);
  const session = await sessionFor(db, claims.participantId, claims.programId);
  if (!session) throw invalidPortalToken();
  return { ...session, expiresAt: claims.expiresAt };
}

/** The participant (not erased) and program a token names, if both still exist. */
export async function sessionFor(db: Knex, participantId: string, programId: string): Promise<Omit<PortalSession, 'expiresAt'> | null> {
  const [participant, program] = await Promise.all([
    db('participants').where({ id: participantId, program_id: programId }).whereNull('erased_at').first() as Promise<
      ParticipantRow | undefined
    >,
    db('programs').where({ id: programId }).first() as Promise<ProgramRow | undefined>,
  ]);
  return participant && program ? { participant, program } : null;
}

/** `GET /v1/portal/me`. */
export async function portalView(db: Knex, session: PortalSession, publicUrl: string): Promise<PortalResponse> {
  const { participant, program } = session;
  const code = await primaryCode(db, participant.id);
  const link = code ? referralLink(publicUrl, code.code) : null;
  const [summary, days, rewards, referrals, payout, payouts, emails, qrSvg] = await Promise.all([
    participantStats(db, participant),
    dailyFigures(db, participant),
    rewardsByKind(db, participant),
    referralsOf(db, participant),
    payoutDetailsOf(db, participant.id),
    payoutsTo(db, participant),
    emailPreferencesOf(db, participant.id),
    link ? QRCode.toString(link, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' }) : null,
  ]);
  return {
    program: { name: program.name },
    referrer: { name: participant.name, email: participant.email },
    code: code?.code ?? null,
    link,
    qrSvg,
    share: link ? shareLinks(program.name, link) : null,
    stats: summary.stats,
    days,
    rewards,
    referrals,
    payout,
    payouts,
    emails,
    expiresAt: session.expiresAt.toISOString(),
  };
}

/** `PATCH /v1/portal/me`: the referrer's payout details and email choices, through the same rules as the secret-key API. */
export async function updatePortal(db: Knex, session: PortalSession, input: PortalUpdate, publicUrl: string): Promise<PortalResponse> {
  const { participant, program } = session;
  if (input.payout !== undefined) await setPayoutDetails(db, program.id, participant.external_id, input.payout);
  if (input.emails) await setEmailPreferences(db, participant.id, input.emails);
  return portalView(db, session, publicUrl);
}

/**
 * An email with all but the first character of its local part hidden
 * (`jane@gmail.com` → `j***@gmail.com`); the domain stays, it says little.
 */
export function maskEmail(email: string | null): string | null {
  if (!email) return null;
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email.slice(0, 1)}***${email.slice(at)}`;
}

/** Share dialogs of the usual services, with the link filled in. */
export function shareLinks(programName: string, link: string): PortalShareLinks {
  const text = `Join me on ${programName}`;
  const enc = encodeURIComponent;
  return {
    email: `mailto:?subject=${enc(text)}&body=${enc(`${text}: ${link}`)}`,
    x: `https://x.com/intent/tweet?text=${enc(text)}&url=${enc(link)}`,
    linkedin: `https://www.linkedin.com/sharing/share-offsite/?url=${enc(link)}`,
    whatsapp: `https://wa.me/?text=${enc(`${text}: ${link}`)}`,
  };
}

/** The last PORTAL_DAYS UTC days from the daily rollups (the database's today), zero-filled. */
async function dailyFigures(db: Knex, participant: ParticipantRow): Promise<PortalDayResponse[]> {
  const result = await db.raw(
    `with days as (
       select generate_series((now() at time zone 'utc')::date - ?::int, (now() at time zone 'utc')::date, interval '1 day')::date as day
     )
     select to_char(d.day, 'YYYY-MM-DD') as date, coalesce(s.clicks, 0) as clicks, coalesce(s.signups, 0) as signups,
            coalesce(s.purchases, 0) as purchases
     from days d
     left join daily_stats s on s.program_id = ? and s.participant_id = ? and s.day = d.day
     order by d.day`,
    [PORTAL_DAYS - 1, participant.program_id, participant.id],
  );
  return (result.rows as PortalDayResponse[]).map((row) => ({
    date: row.date,
    clicks: Number(row.clicks),
    signups: Number(row.signups),
    purchases: Number(row.purchases),
  }));
}

type SumRow = { kind: string; status: string; currency: string | null; total: number };

const balances = (rows: SumRow[]): RewardBalances => {
  const pick = (status: string): MoneyByCurrency =>
    Object.fromEntries(
      rows.filter((row) => row.status === status && row.currency).map((row) => [row.currency as string, Number(row.total)]),
    );
  return { pending: pick('pending'), approved: pick('approved'), paid: pick('paid') };
};

/** Cash and credit sums by status and currency (revoked left out), and the coupons. */
async function rewardsByKind(db: Knex, participant: ParticipantRow): Promise<PortalResponse['rewards']> {
  const mine = { program_id: participant.program_id, beneficiary_id: participant.id };
  const [sums, coupons] = await Promise.all([
    db('rewards')
      .where(mine)
      .whereIn('kind', ['cash', 'credit'])
      .whereIn('status', ['pending', 'approved', 'paid'])
      .select('kind', 'status', 'currency')
      .sum({ total: 'amount' })
      .groupBy('kind', 'status', 'currency') as Promise<SumRow[]>,
    db('rewards')
      .where({ ...mine, kind: 'coupon' })
      .whereIn('status', ['pending', 'approved', 'paid'])
      .orderBy('created_at', 'desc')
      .limit(LIST_LIMIT)
      .select('coupon', 'status', 'created_at') as Promise<
      Array<{ coupon: string | null; status: PortalCouponResponse['status']; created_at: Date }>
    >,
  ]);
  return {
    cash: balances(sums.filter((row) => row.kind === 'cash')),
    credit: balances(sums.filter((row) => row.kind === 'credit')),
    // A coupon is theirs to use once approved: until then its code stays hidden.
    coupons: coupons.map((row) => ({
      coupon: row.status === 'pending' ? null : row.coupon,
      status: row.status,
      createdAt: row.created_at.toISOString(),
    })),
  };
}

/** The people they referred, newest first, emails masked. */
async function referralsOf(db: Knex, participant: ParticipantRow): Promise<PortalResponse['referrals']> {
  const theirs = db('referrals as r').where({ 'r.program_id': participant.program_id, 'r.referrer_id': participant.id });
  const [rows, [count]] = await Promise.all([
    theirs
      .clone()
      .join('participants as p', 'p.id', 'r.referred_id')
      .orderBy('r.created_at', 'desc')
      .limit(LIST_LIMIT)
      .select('p.email', 'r.status', 'r.created_at') as Promise<Array<{ email: string | null; status: string; created_at: Date }>>,
    theirs.clone().count({ n: '*' }) as Promise<Array<{ n: number | string }>>,
  ]);
  const data: PortalReferralResponse[] = rows.map((row) => ({
    email: maskEmail(row.email),
    status: row.status,
    createdAt: row.created_at.toISOString(),
  }));
  return { total: Number(count?.n ?? 0), data };
}

/** The payout items made out to them, newest first. */
async function payoutsTo(db: Knex, participant: ParticipantRow): Promise<PortalPayoutResponse[]> {
  const rows = (await db('payout_items')
    .where({ program_id: participant.program_id, participant_id: participant.id })
    .orderBy('created_at', 'desc')
    .limit(LIST_LIMIT)
    .select('currency', 'amount', 'method', 'status', 'created_at', 'updated_at')) as Array<{
    currency: string;
    amount: number;
    method: PortalPayoutResponse['method'];
    status: PortalPayoutResponse['status'];
    created_at: Date;
    updated_at: Date;
  }>;
  return rows.map((row) => ({
    currency: row.currency,
    amount: Number(row.amount),
    method: row.method,
    status: row.status,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  }));
}
