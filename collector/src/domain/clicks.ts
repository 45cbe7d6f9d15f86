/**
 * Clicks: every landing through a referral link, from the snippet or a redirect
 * link. Written in batches (see storage/groupCommit.ts): one statement per batch,
 * whatever its size.
 */
import type { Knex } from 'knex';
import { ipKeySql } from '../storage/clickPartitions.ts';
import { clickSettingsSql, isEmbedded, prepared, usesGenericPlans } from '../storage/db.ts';
import { codeRefusalSql } from './codes.ts';
import { addCounts, applyStats, PROGRAM_DAILY_SHARDS, type StatsDelta } from './rollups.ts';

/** The same visitor clicking the same code again within this window is stored once. */
export const CLICK_DEDUPE_MS = 60 * 60 * 1000;

export interface ClickInput {
  programId: string;
  code: string;
  vid?: string | undefined;
  url?: string | undefined;
  referrer?: string | undefined;
  ipHash?: string | undefined;
  userAgent?: string | undefined;
}

export interface ClickResult {
  /** The code exists, belongs to the program and is enabled. */
  valid: boolean;
  /** Counted as a new click (not a repeat within the hour, nor the claim of a redirect-link click). */
  stored: boolean;
}

type Action = 'invalid' | 'duplicate' | 'claim' | 'store';

/** A click's decision; the other columns are read back for claims only (null otherwise). */
interface Decided {
  i: number;
  action: Action;
  program_id: string;
  code_id: string | null;
  participant_id: string | null;
  unclaimed_id: number | null;
  known: boolean;
  /** The statement's now(): rollup days come from the database's clock. */
  at: Date;
}

const DAY = `(now() at time zone 'utc')::date`;

/**
 * The program of click `alias`, read through its code per row. Written so, a prepared
 * statement's plan finds a visitor's clicks by visitor id first, whatever the tables'
 * sizes when it was planned (a join let a plan made on empty tables walk the program's
 * codes for every click: 4 ms a click).
 */
export const programOfClickSql = (alias: string) => `(select kc.program_id from codes kc where kc.id = ${alias}.code_id)`;

/**
 * CTEs ending in `user_agent_ids(id, user_agent)`: the dictionary ids of the user
 * agents in `source`, adding those not seen before (in a stable order, so two writers
 * lock alike). A new one that another writer adds meanwhile is not in this
 * statement's snapshot: DO UPDATE still returns its row, where DO NOTHING would not.
 */
const userAgentIdsSql = (source: string) => `user_agents_known as (
    select u.id, u.user_agent from user_agents u where u.user_agent in (select user_agent from ${source})
  ), user_agents_added as (
    insert into user_agents (user_agent)
    select distinct user_agent from ${source}
    where user_agent is not null and user_agent not in (select user_agent from user_agents_known)
    order by 1
    on conflict (user_agent) do update set user_agent = excluded.user_agent
    returning id, user_agent
  ), user_agent_ids as (
    select * from user_agents_known union all select * from user_agents_added
  )`;

/**
 * A whole batch in one statement (one round trip, atomic; test/bench/clickParts.ts measures its parts): what the database knows
 * about each click, the decision, the new clicks, the rejected codes' decisions and
 * the rollups. Rules, per click in order:
 * - invalid: unknown code, another program's, or disabled (a `rejected` decision);
 * - duplicate: the same visitor clicked the same code within the hour (in the
 *   database or earlier in this batch); a click without visitor id, the same IP;
 * - claim: a snippet click following a redirect-link click (same code and IP, no
 *   visitor id yet) gives it the visitor id instead of counting the landing twice;
 * - store: everything else; a visitor seen before counts no new visitor.
 * Every lookup is a LATERAL … LIMIT 1 (or an aggregate) on an index, so the plan
 * PostgreSQL caches for this prepared statement stays index probes however the
 * tables grow. Every lookup also ends at tomorrow: the batch then skips, when it
 * starts, the partitions made ahead for the coming months (and the last hour's
 * lookups the default partition), which a click never reaches (its created_at is its
 * insert's now(); a day spares a clock set back). Without it, each click probed the
 * two empty months ahead. Claims (rare) are written afterwards, see
 * `claimRedirectClicks`.
 */
export const BATCH_SQL = `with input as (
    select i, program_id, code, given, vid, ${ipKeySql('ip')} as ip, url, referrer, user_agent
    from unnest(?::int[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
      as t(i, program_id, code, given, vid, ip, url, referrer, user_agent)
  ), facts as (
    select input.*, c.id as code_id, c.participant_id, ${codeRefusalSql('c', 'input.program_id')} as refusal,
      ${codeRefusalSql('c', 'input.program_id')} is null as ok,
      coalesce(v.known, false) as known_visitor,
      coalesce(v.last_on_code >= ?, false) as recent_vid,
      recent_ip.hit is not null as recent_ip,
      unclaimed.id as unclaimed_id
    from input
    left join lateral (select * from codes where lower(codes.code) = input.code limit 1) c on true
    -- A visitor has few clicks: read them once through (vid, …).
    left join lateral (
      select count(*) > 0 as known, max(k.created_at) filter (where k.code_id = c.id) as last_on_code
      from clicks k
      where input.vid is not null and k.vid = input.vid and k.created_at < now() + interval '1 day' and ${programOfClickSql('k')} = c.program_id
    ) v on true
    -- A code is one program's: its clicks need no program_id condition (nor index column).
    -- Each lookup runs only for the clicks it decides (a condition on input alone skips the probe).
    left join lateral (
      select 1 as hit from clicks k
      where input.vid is null and k.code_id = c.id and k.ip_hash = input.ip and k.created_at >= ? and k.created_at < now() + interval '1 day' limit 1
    ) recent_ip on true
    left join lateral (
      select k.id from clicks k
      where input.vid is not null and k.code_id = c.id and k.ip_hash = input.ip and k.vid is null and k.created_at >= ? and k.created_at < now() + interval '1 day'
      order by k.created_at desc limit 1
    ) unclaimed on true
  ), repeats as (
    select f.*, ok and vid is not null and (recent_vid or row_number() over (partition by ok, code_id, vid order by i) > 1) as repeat_vid
    from facts f
  ), candidates as (
    select r.*, ok and vid is not null and not repeat_vid and unclaimed_id is not null as may_claim from repeats r
  ), decided as (
    select c.i, c.program_id, c.code_id, c.participant_id, c.given, c.vid, c.url, c.referrer, c.ip, c.user_agent, c.unclaimed_id, c.refusal,
      case
        when not ok then 'invalid'
        when repeat_vid then 'duplicate'
        -- One claim per redirect-link click: the first candidate of the batch takes it.
        when may_claim and not coalesce(bool_or(may_claim) over earlier_same_ip, false) then 'claim'
        -- Without a visitor id: the same IP and code within the hour, or earlier in this batch.
        when vid is null and ip is not null and (recent_ip or coalesce(bool_or(ok and (vid is null or not repeat_vid)) over earlier_same_ip, false)) then 'duplicate'
        else 'store'
      end as action,
      known_visitor or coalesce(bool_or(ok and vid is not null and not repeat_vid) over (partition by program_id, vid order by i rows between unbounded preceding and 1 preceding), false) as known
    from candidates c
    window earlier_same_ip as (partition by code_id, ip order by i rows between unbounded preceding and 1 preceding)
  ), stored as (
    select * from decided where action = 'store'
  ), ${userAgentIdsSql('stored')}, new_clicks as (
    insert into clicks (code_id, user_agent_id, ip_hash, vid, url, referrer)
    select s.code_id, ua.id, s.ip, s.vid, s.url, s.referrer
    from stored s left join user_agent_ids ua on ua.user_agent = s.user_agent order by s.i
  ), rejected as (
    insert into decisions (program_id, subject, outcome, reason, code)
    select program_id, 'click', 'rejected', refusal, given
    from decided where action = 'invalid' order by i
  ), counts as (
    select program_id, participant_id, count(*)::int as clicks, count(*) filter (where vid is null or not known)::int as visitors
    from stored group by program_id, participant_id
  ), rollup_daily as (
    ${addCounts('daily_stats', `select program_id, participant_id, ${DAY}, clicks, visitors, 0, 0 from counts order by program_id, participant_id`)}
  ), rollup_monthly as (
    ${addCounts('participant_monthly', `select program_id, participant_id, date_trunc('month', ${DAY})::date, clicks, visitors, 0, 0 from counts order by program_id, participant_id`)}
  ), rollup_program as (
    ${addCounts('program_daily', `select program_id, ${DAY}, floor(random() * ${PROGRAM_DAILY_SHARDS})::int, sum(clicks)::int, sum(visitors)::int, 0, 0 from counts group by program_id order by program_id`)}
  ) select d.i, d.action, claim.* from decided d
    -- Only a claim needs more than its action (claimRedirectClicks): the others answer two columns.
    left join lateral (
      select d.program_id, d.code_id, d.participant_id, d.unclaimed_id, d.known, now() as at where d.action = 'claim'
    ) claim on true`;

/** Clicks as they are, one statement for any number (a claim lost to another process). */
const INSERT_SQL = `with stored as (
    select * from unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
      as t(code_id, vid, url, referrer, ip, user_agent)
  ), ${userAgentIdsSql('stored')}
  insert into clicks (code_id, user_agent_id, ip_hash, vid, url, referrer)
  select s.code_id, ua.id, ${ipKeySql('s.ip')}, s.vid, s.url, s.referrer
  from stored s left join user_agent_ids ua on ua.user_agent = s.user_agent`;

/**
 * The program's clicks, as `k` (a click names its code; the code, `kc`, its program).
 * Narrow it by visitor id: `clicksOf(db, programId).where('k.vid', vid)`.
 */
export const clicksOf = (db: Knex, programId: string) =>
  db('clicks as k').join('codes as kc', 'kc.id', 'k.code_id').where('kc.program_id', programId);

/** Whether the program has a click from this visitor id. */
export async function hasClicked(db: Knex, programId: string, vid: string): Promise<boolean> {
  return Boolean(await clicksOf(db, programId).where('k.vid', vid).first('k.id'));
}

const clip = (text: string | undefined, length: number) => text?.slice(0, length) ?? null;

/**
 * Records a batch of clicks (see BATCH_SQL for the rules). Batches run one at a time
 * (ingest.ts), so each sees what the previous one wrote.
 *
 * Every batch runs with PostgreSQL's generic plan for BATCH_SQL, without bitmap scans
 * (storage/db.ts CLICK_SETTINGS, SET LOCAL in the batch's own transaction). Left to choose, PostgreSQL plans batches afresh (its
 * estimate for a few rows beats the generic plan's), and planning this statement, with
 * a lookup in every month partition, costs more than running it, the more so as the
 * tables grow. PostgreSQL CPU per click on small tables, left to choose → generic
 * (BEGIN and COMMIT included): one click a batch 1.0–2.3 ms → 0.5–0.9 ms, four or five
 * 0.47–0.50 → 0.22–0.27 ms, from eight on the same. In bench:scale on the same hour
 * (10M clicks), collector + PostgreSQL CPU per click went 216 → 287 µs from the empty
 * tables when only batches under five took the generic plan, 219 → 250 µs with every
 * batch on it (clickRatioAt10M 0.758 → 0.887). The transaction costs three round
 * trips a batch; the server's ingest passes a connection of its own whose session
 * already runs generic plans (storage/db.ts openGenericPlanDb), and skips them.
 */
export async function recordClicks(db: Knex, inputs: ClickInput[]): Promise<ClickResult[]> {
  if (!db.isTransaction && !isEmbedded(db) && !usesGenericPlans(db))
    return db.transaction(async (trx) => {
      // LOCAL: the connection goes back to the pool as it was.
      await trx.raw(clickSettingsSql('local'));
      return recordClicksWith(trx, inputs);
    });
  return recordClicksWith(db, inputs);
}

async function recordClicksWith(db: Knex, inputs: ClickInput[]): Promise<ClickResult[]> {
  const since = new Date(Date.now() - CLICK_DEDUPE_MS);
  const result = await prepared(db, 'click_batch', BATCH_SQL, [
    inputs.map((_, i) => i),
    inputs.map((input) => input.programId),
    inputs.map((input) => input.code.toLowerCase()),
    inputs.map((input) => input.code.slice(0, 64)),
    inputs.map((input) => input.vid ?? null),
    inputs.map((input) => input.ipHash ?? null),
    inputs.map((input) => clip(input.url, 2048)),
    inputs.map((input) => clip(input.referrer, 2048)),
    inputs.map((input) => clip(input.userAgent, 512)),
    since,
    since,
    since,
  ]);
  const decided = result.rows as Decided[];
  const results: ClickResult[] = new Array(inputs.length);
  for (const row of decided) results[row.i] = { valid: row.action !== 'invalid', stored: row.action === 'store' };
  const claims = decided.filter((row) => row.action === 'claim');
  if (claims.length) await claimRedirectClicks(db, claims, inputs, results);
  return results;
}

/**
 * Gives each claiming click's visitor id to the redirect-link click it follows. The
 * redirect click counted a new visitor: a visitor already known takes it back. A
 * claim lost to another process is stored as a click of its own instead.
 */
async function claimRedirectClicks(db: Knex, claims: Decided[], inputs: ClickInput[], results: ClickResult[]): Promise<void> {
  const stats: StatsDelta[] = [];
  const unclaimed: Array<{ claim: Decided; input: ClickInput }> = [];
  for (const claim of claims) {
    const input = inputs[claim.i] as ClickInput;
    const participantId = claim.participant_id as string;
    // Through the unclaimed-clicks index (clicks have no primary key: see the partitions migration).
    const updated = await db('clicks')
      .where({ code_id: claim.code_id, id: claim.unclaimed_id })
      .whereRaw(`ip_hash = ${ipKeySql('?')}`, [input.ipHash ?? null])
      .whereNull('vid')
      .update({ vid: input.vid, url: clip(input.url, 2048), referrer: clip(input.referrer, 2048) });
    if (updated) {
      if (claim.known) stats.push({ programId: claim.program_id, participantId, at: claim.at, visitors: -1 });
      continue;
    }
    results[claim.i] = { valid: true, stored: true };
    stats.push({ programId: claim.program_id, participantId, at: claim.at, clicks: 1, visitors: claim.known ? 0 : 1 });
    unclaimed.push({ claim, input });
  }
  if (unclaimed.length) {
    const column = (pick: (click: (typeof unclaimed)[number]) => string | null | undefined) =>
      unclaimed.map((click) => pick(click) ?? null);
    await prepared(db, 'click_insert', INSERT_SQL, [
      column(({ claim }) => claim.code_id),
      column(({ input }) => input.vid),
      column(({ input }) => clip(input.url, 2048)),
      column(({ input }) => clip(input.referrer, 2048)),
      column(({ input }) => input.ipHash),
      column(({ input }) => clip(input.userAgent, 512)),
    ]);
  }
  await applyStats(db, stats);
}
