/**
 * Attribution: who referred a new customer. One command serves browser events
 * (unverified) and server conversions (verified). Each referred participant is
 * attributed at most once (a unique constraint decides under concurrency), and every
 * outcome is recorded as a decision.
 */
import type { Knex } from 'knex';
import { prepared, rowFromJson } from '../storage/db.ts';
import type { AttributionStatus } from '../../../shared/types.ts';
import { clicksOf, hasClicked, programOfClickSql } from './clicks.ts';
import { codeRefusal, type CodeRow } from './codes.ts';
import { recordDecision, type DecisionReason } from './decisions.ts';
import { isSelfReferral, reviewReason } from './fraud.ts';
import type { ParticipantRow } from './participants.ts';
import type { ProgramRow } from './programs.ts';
import { reattribute } from './reattribution.ts';
import type { Work } from './work.ts';
import { enqueueWebhook } from './webhooks.ts';
import { enqueueEmail } from './emails.ts';
import type { PromoCodeMatch } from './promoCodes.ts';

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
  /** The conversion was recorded in this very step: counted for no referrer yet, so a moved referral leaves it where it is. */
  newConversion?: boolean;
  /** `code` already looked up, with its owner (null: no such code), by the caller's own statement. */
  codeWithOwner?: CodeWithOwner | null;
  /** A provider's discount the customer paid with, owned by a participant: it names the referrer, before any code or click. */
  promoCode?: PromoCodeMatch | undefined;
  /** The referral already made with others of the batch (attributeMany). */
  attributed?: AttributedAhead | undefined;
}

/** What the customer came with, as decisions record it: the promo code's text (else its id), or the referral code. */
const hintCode = (hint: AttributionHint) => (hint.promoCode ? (hint.promoCode.promo.code ?? hint.promoCode.promo.discount_id) : hint.code);

/** A decision's details: the visitor id, and the promo code it came through. */
function hintDetails(hint: AttributionHint): Record<string, unknown> | undefined {
  const promo = hint.promoCode?.promo;
  if (!hint.vid && !promo) return undefined;
  return {
    ...(hint.vid ? { vid: hint.vid } : {}),
    ...(promo ? { promoCode: { id: promo.id, provider: promo.provider, discountId: promo.discount_id, code: promo.code } } : {}),
  };
}

export type CodeWithOwner = { code: CodeRow; owner: ParticipantRow };

/** Reads `codeWithOwner` back from a statement's `row_to_json(code)` and `row_to_json(owner)` columns. */
export function codeWithOwnerFrom(row: {
  code: Record<string, unknown> | null;
  owner: Record<string, unknown> | null;
}): CodeWithOwner | null {
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

export async function participantById(trx: Knex, id: string): Promise<ParticipantRow> {
  return (await trx('participants').where({ id }).first()) as ParticipantRow;
}

export async function referralOf(trx: Knex, participantId: string): Promise<ReferralRow | undefined> {
  const result = await prepared(trx, 'referral_of', `select * from referrals where referred_id = ? limit 1`, [participantId]);
  return result.rows[0] as ReferralRow | undefined;
}

/** Finds the referrer from the code given, else from the visitor's clicks inside the window. */
async function findCandidate(trx: Knex, program: ProgramRow, hint: AttributionHint): Promise<Candidate> {
  // A promo code was typed at a verified payment: its owner is the candidate, whatever the cookie says.
  if (hint.promoCode) return { referrer: hint.promoCode.owner, code: null };
  const windowStart = new Date(Date.now() - program.settings.windowDays * DAY_MS);
  if (hint.code) {
    const found = hint.codeWithOwner !== undefined ? (hint.codeWithOwner ?? undefined) : await findCodeWithOwner(trx, hint.code);
    const code = found?.code;
    const refusal = codeRefusal(code, program.id);
    if (refusal || !found || !code)
      return { reject: refusal ?? 'unknown_code', code: code?.program_id === program.id ? code.code : hint.code };
    if (hint.vid) {
      // The code is the program's: its clicks are.
      const clicks = await trx('clicks').where({ vid: hint.vid, code_id: code.id }).max({ last: 'created_at' }).first();
      const last = clicks?.last as Date | null | undefined;
      if (last && last < windowStart) return { reject: 'outside_window', code: code.code };
    }
    return { referrer: found.owner, code };
  }
  if (hint.vid) {
    const direction = program.settings.attribution === 'first' ? 'asc' : 'desc';
    const click = (await clicksOf(trx, program.id)
      .where('k.vid', hint.vid)
      .where('k.created_at', '>=', windowStart)
      .orderBy('k.created_at', direction)
      .first('k.code_id')) as { code_id: string } | undefined;
    if (click) {
      const code = (await trx('codes').where({ id: click.code_id }).first()) as CodeRow;
      const refusal = codeRefusal(code, program.id);
      if (refusal) return { reject: refusal, code: code.code };
      return { referrer: await participantById(trx, code.participant_id), code };
    }
    if (await hasClicked(trx, program.id, hint.vid)) return { reject: 'outside_window' };
  }
  return { reject: 'no_referral_data' };
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

/** The answer for a customer who already has a referral. */
async function existing(trx: Knex, referral: ReferralRow, extra: Partial<Attribution> = {}): Promise<Attribution> {
  const referrer = await participantById(trx, referral.referrer_id);
  return { status: 'existing', referrer: referrer.external_id, referral, ...(referral.status === 'held' ? { held: true } : {}), ...extra };
}

/** A referrer who passed every check, and why the referral is held (if it is). */
type Vetted = { referrer: ParticipantRow; code: CodeRow | null; holdReason?: DecisionReason };
type Refused = { reject: DecisionReason; referrerId?: string; code?: string | null };

/**
 * The checks every new referral passes: a usable code or click (findCandidate), not
 * the customer themselves (isSelfReferral), not up the customer's own chain
 * (wouldCycle); then whether to hold it for review (reviewReason: velocity,
 * duplicate identity, disposable email).
 */
async function vetReferrer(trx: Knex, program: ProgramRow, participant: ParticipantRow, hint: AttributionHint): Promise<Vetted | Refused> {
  const candidate = await findCandidate(trx, program, hint);
  if ('reject' in candidate) return { reject: candidate.reject, code: candidate.code ?? null };
  const { referrer, code } = candidate;
  const refuse = (reason: DecisionReason): Refused => ({ reject: reason, referrerId: referrer.id, code: code?.code ?? null });
  if (await isSelfReferral(trx, referrer, participant, hint.vid)) return refuse('self_referral');
  if (!hint.newParticipant && (await wouldCycle(trx, referrer, participant))) return refuse('referral_cycle');
  const holdReason = await reviewReason(trx, program.id, referrer.id, participant, hint, program.settings);
  return { referrer, code, ...(holdReason ? { holdReason } : {}) };
}

type Decide = (
  outcome: 'accepted' | 'rejected' | 'held',
  reason: DecisionReason,
  extra?: { referrerId?: string | null; code?: string | null; details?: Record<string, unknown> },
) => Promise<void>;

/**
 * The referral, the customer's referredBy and the decision, in one statement; all or
 * nothing happens when another request attributed this customer first (it wins). The
 * referral dates from the conversion that carried it: a server report naming the
 * referral of an event the browser reported earlier makes it as of that event.
 * `clicked`: whether this visitor had clicked one of the program's codes (the conversion
 * rate counts only those). Without a visitor id there is no such click, and the
 * statement leaves the clicks out: each of their partitions would cost it an index
 * scan to set up, on every signup.
 */
const attributeSql = (clicked: string) => `with r as (
    insert into referrals (program_id, referrer_id, referred_id, code_id, vid, status, reason, verified, ip_hash, created_at)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, (select created_at from conversions where id = ?::uuid))
    on conflict (referred_id) do nothing returning *
  ), p as (
    update participants set referred_by = ? where id = ? and exists (select 1 from r)
  ), d as (
    insert into decisions (program_id, subject, outcome, reason, participant_id, referrer_id, code, conversion_id, details)
    select ?, 'attribution', ?, ?, ?, ?, ?, ?, ?::jsonb where exists (select 1 from r)
  ) select r.*, ${clicked} as clicked from r`;
const ATTRIBUTE_SQL = attributeSql('false');
const ATTRIBUTE_VISITOR_SQL = attributeSql(
  `exists (select 1 from clicks k where k.vid = r.vid and ${programOfClickSql('k')} = r.program_id)`,
);

/**
 * Attributes `participant` (the customer converting now) to a referrer, at most once.
 * Runs inside the conversion's unit of work.
 */
export async function attribute(
  work: Work,
  program: ProgramRow,
  participant: ParticipantRow,
  hint: AttributionHint,
  conversionId: string,
): Promise<Attribution> {
  const { trx } = work;
  const decide: Decide = (outcome, reason, extra = {}) =>
    recordDecision(trx, {
      programId: program.id,
      subject: 'attribution',
      outcome,
      reason,
      participantId: participant.id,
      referrerId: extra.referrerId ?? null,
      code: extra.code ?? hintCode(hint) ?? null,
      conversionId,
      details: extra.details ?? hintDetails(hint),
    });

  // Made with others of its batch (attributeMany): what is left is done at its turn.
  if (hint.attributed) return referralMade(work, program, { participant, ...hint.attributed, hint }, hint.attributed.referral, false);
  // A customer created in this transaction cannot have been referred yet.
  const current = hint.newParticipant ? undefined : await referralOf(trx, participant.id);
  if (current) {
    // Only the server can confirm (or overrule) a referral the browser made.
    if (hint.verified && !current.verified) return settleReferral(work, program, participant, current, hint, decide, conversionId);
    const promoElsewhere = hint.promoCode && hint.promoCode.owner.id !== current.referrer_id;
    if (hint.code || hint.vid || promoElsewhere) await decide('rejected', 'already_attributed', { referrerId: current.referrer_id });
    return existing(trx, current);
  }

  const vetted = await vetReferrer(trx, program, participant, hint);
  if ('reject' in vetted) {
    if (vetted.reject === 'no_referral_data') return { status: 'none', reason: 'no_referral_data' };
    await decide('rejected', vetted.reject, vetted);
    return { status: 'rejected', reason: vetted.reject };
  }
  const { referrer, code, holdReason } = vetted;

  // All or nothing: another request that attributed this customer first wins (ATTRIBUTE_SQL).
  const inserted = await prepared(
    trx,
    hint.vid === undefined ? 'attribute' : 'attribute_visitor',
    hint.vid === undefined ? ATTRIBUTE_SQL : ATTRIBUTE_VISITOR_SQL,
    [
      program.id,
      referrer.id,
      participant.id,
      code?.id ?? null,
      hint.vid ?? null,
      holdReason ? 'held' : 'attributed',
      holdReason ?? null,
      hint.verified,
      hint.ipHash ?? null,
      conversionId,
      referrer.id,
      participant.id,
      program.id,
      holdReason ? 'held' : 'accepted',
      holdReason ?? (hint.promoCode ? 'promo_code' : 'attributed'),
      participant.id,
      referrer.id,
      code?.code ?? hintCode(hint) ?? null,
      conversionId,
      hintDetails(hint) ? JSON.stringify(hintDetails(hint)) : null,
    ],
  );
  const row = inserted.rows[0] as (ReferralRow & { clicked: boolean }) | undefined;
  if (!row) {
    const winner = (await referralOf(trx, participant.id)) as ReferralRow;
    await decide('rejected', 'already_attributed', { referrerId: winner.referrer_id });
    return existing(trx, winner);
  }
  const { clicked, ...referral } = row;
  return referralMade(work, program, { participant, referrer, code, holdReason, hint }, referral, clicked);
}

/** A new referral, stored: counted for the referrer, announced (webhook, email), and answered. */
async function referralMade(
  work: Work,
  program: ProgramRow,
  { participant, referrer, code, holdReason, hint }: { participant: ParticipantRow; hint: AttributionHint } & Vetted,
  referral: ReferralRow,
  clicked: boolean,
): Promise<Attribution> {
  const { trx } = work;
  work.count({ programId: program.id, participantId: referrer.id, at: referral.created_at, signups: 1, clickedSignups: clicked ? 1 : 0 });
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
  if (!holdReason)
    await enqueueEmail(trx, program, 'referral', { to: referrer.id, about: referral.id, data: { referred: participant.id } });
  return {
    status: 'attributed',
    referrer: referrer.external_id,
    referral,
    ...(holdReason ? { held: true, reason: holdReason } : hint.promoCode ? { reason: 'promo_code' as const } : {}),
  };
}

/**
 * A new customer who came with a code and nothing else to check (no visitor id, address,
 * email or promo code): no check reads what another conversion of the batch writes
 * (attributeMany), so their referral can be made before their turn. The code's owner,
 * when the code is usable.
 */
export function attributableAhead(hint: AttributionHint & { email?: string | undefined }, programId: string): CodeWithOwner | undefined {
  const found = hint.codeWithOwner;
  if (!hint.newParticipant || !found || hint.vid || hint.ipHash || hint.email || hint.promoCode) return undefined;
  return codeRefusal(found.code, programId) ? undefined : found;
}

export type AttributedAhead = { referral: ReferralRow; referrer: ParticipantRow; code: CodeRow };

/**
 * The referrals, referredBy and decisions of new customers that `attributableAhead`
 * let through, in one statement (one round trip a batch instead of one a customer):
 * what ATTRIBUTE_SQL writes for each, each dated from its conversion. Answers by the
 * conversion's id; `attribute` finishes each at its turn (counts, webhook, email).
 */
const ATTRIBUTE_MANY_SQL = `with input as (
    select t.*, c.program_id, c.participant_id, c.created_at from unnest(?::int[], ?::uuid[], ?::uuid[], ?::uuid[], ?::text[], ?::boolean[])
      as t(i, conversion_id, referrer_id, code_id, code, verified)
    join conversions c on c.id = t.conversion_id
  ), r as (
    insert into referrals (program_id, referrer_id, referred_id, code_id, status, verified, created_at)
    select program_id, referrer_id, participant_id, code_id, 'attributed', verified, created_at from input order by i
    on conflict (referred_id) do nothing returning *
  ), p as (
    update participants set referred_by = r.referrer_id from r where participants.id = r.referred_id
  ), d as (
    insert into decisions (program_id, subject, outcome, reason, participant_id, referrer_id, code, conversion_id)
    select input.program_id, 'attribution', 'accepted', 'attributed', input.participant_id, input.referrer_id, input.code, input.conversion_id
    from input join r on r.referred_id = input.participant_id order by i
  ) select input.conversion_id, row_to_json(r) as referral from input join r on r.referred_id = input.participant_id`;

export async function attributeMany(
  trx: Knex,
  ahead: Array<{ conversionId: string; verified: boolean; found: CodeWithOwner }>,
): Promise<Map<string, AttributedAhead>> {
  const made = new Map<string, AttributedAhead>();
  if (!ahead.length) return made;
  const result = await prepared(trx, 'attribute_many', ATTRIBUTE_MANY_SQL, [
    ahead.map((_, i) => i),
    ahead.map((item) => item.conversionId),
    ahead.map((item) => item.found.owner.id),
    ahead.map((item) => item.found.code.id),
    ahead.map((item) => item.found.code.code),
    ahead.map((item) => item.verified),
  ]);
  const byConversion = new Map(ahead.map((item) => [item.conversionId, item.found]));
  for (const row of result.rows as Array<{ conversion_id: string; referral: Record<string, unknown> }>) {
    const found = byConversion.get(row.conversion_id) as CodeWithOwner;
    const referral = rowFromJson<ReferralRow>(row.referral, ['created_at']) as ReferralRow;
    made.set(row.conversion_id, { referral, referrer: found.owner, code: found.code });
  }
  return made;
}

/**
 * A server report for a customer whose referral only the browser made. The same code
 * or visitor id confirms it; none leaves it unconfirmed (its rewards wait for review);
 * another referrer that passes every check replaces it: the server's report wins,
 * unless the browser's referrer was paid for this customer already (then it stays
 * unconfirmed, and the operator settles it).
 */
async function settleReferral(
  work: Work,
  program: ProgramRow,
  participant: ParticipantRow,
  current: ReferralRow,
  hint: AttributionHint,
  decide: Decide,
  conversionId: string,
): Promise<Attribution> {
  const { trx } = work;
  const unconfirmed = async () => {
    await decide('held', 'unconfirmed_referral', { referrerId: current.referrer_id, code: null });
    return existing(trx, current, { reason: 'unconfirmed_referral' });
  };
  const confirm = async () =>
    existing(trx, (await trx('referrals').where({ id: current.id }).update({ verified: true }).returning('*'))[0] as ReferralRow);
  if (!hint.code && !hint.vid && !hint.promoCode) return unconfirmed();
  if (hint.vid && hint.vid === current.vid) return confirm();
  if (hint.code && current.code_id) {
    const code = (await trx('codes').where({ id: current.code_id }).first('code')) as { code: string };
    if (code.code.toLowerCase() === hint.code.toLowerCase()) return confirm();
  }
  // The customer's visitor id is known from the referral the browser made, if the server sent none.
  const vetted = await vetReferrer(trx, program, participant, { ...hint, vid: hint.vid ?? current.vid ?? undefined });
  if ('reject' in vetted) {
    if (vetted.reject !== 'no_referral_data') await decide('rejected', vetted.reject, vetted);
    return unconfirmed();
  }
  if (vetted.referrer.id === current.referrer_id) return confirm();
  // The browser's referrer was paid for this customer already: money moved, so the
  // referral stays (unconfirmed, for the operator to settle), with the server's referrer on record.
  if (await trx('rewards').where({ referral_id: current.id, beneficiary_id: current.referrer_id, status: 'paid' }).first('id')) {
    await decide('held', 'unconfirmed_referral', {
      referrerId: current.referrer_id,
      code: null,
      details: { serverReferrer: vetted.referrer.external_id, paid: true },
    });
    return existing(trx, current, { reason: 'unconfirmed_referral' });
  }
  const referral = await reattribute(
    work,
    program,
    participant,
    current,
    { referrerId: vetted.referrer.id, codeId: vetted.code?.id ?? null, vid: hint.vid, holdReason: vetted.holdReason },
    hint.newConversion ? conversionId : undefined,
  );
  await decide('accepted', 'server_override', {
    referrerId: vetted.referrer.id,
    code: vetted.code?.code ?? null,
    details: { replaced: current.referrer_id, ...(vetted.holdReason ? { held: vetted.holdReason } : {}) },
  });
  return {
    status: 'attributed',
    referrer: vetted.referrer.external_id,
    referral,
    ...(vetted.holdReason ? { held: true, reason: vetted.holdReason } : {}),
  };
}
