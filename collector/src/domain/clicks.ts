/**
 * Clicks: every landing through a referral link, from the snippet or a redirect
 * link. Written in batches (see storage/groupCommit.ts): two round trips per batch,
 * whatever its size.
 */
import type { Knex } from 'knex';
import type { CodeRow } from './codes.ts';
import { prepared } from '../storage/db.ts';
import { columnsOf, ROLLUP_CTES, rollupParams, type StatsDelta } from './rollups.ts';

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

export type ClickResult = { valid: false } | { valid: true; code: CodeRow; stored: boolean };

const CLICK_COLUMNS = ['program_id', 'code_id', 'participant_id', 'vid', 'url', 'referrer', 'ip_hash', 'user_agent'] as const;
type ClickRow = Record<(typeof CLICK_COLUMNS)[number], string | null>;

/** What the database knows about one click of the batch, in one round trip for all of them. */
interface ClickFacts {
  i: number;
  id: string | null;
  program_id: string | null;
  participant_id: string | null;
  code: string | null;
  disabled_at: Date | null;
  created_at: Date | null;
  known_visitor: boolean;
  recent_vid: boolean;
  recent_ip: boolean;
  unclaimed: boolean;
}

/**
 * Every lookup is a LATERAL … LIMIT 1 (or an aggregate) on an index: the plan PostgreSQL
 * caches for this prepared statement stays a handful of index probes per click
 * however the tables grow, never a scan of the hour's clicks.
 */
const FACTS_SQL = `with input(i, code, vid, ip) as (select * from unnest(?::int[], ?::text[], ?::text[], ?::text[]))
  select input.i, c.id, c.program_id, c.participant_id, c.code, c.disabled_at, c.created_at,
    coalesce(v.known, false) as known_visitor,
    coalesce(v.last_on_code >= ?, false) as recent_vid,
    recent_ip.hit is not null as recent_ip,
    unclaimed.hit is not null as unclaimed
  from input
  left join lateral (select * from codes where lower(codes.code) = input.code limit 1) c on true
  -- A visitor has few clicks: read them once through (program_id, vid, …).
  left join lateral (
    select count(*) > 0 as known, max(k.created_at) filter (where k.code_id = c.id) as last_on_code
    from clicks k where k.program_id = c.program_id and k.vid = input.vid
  ) v on true
  left join lateral (
    select 1 as hit from clicks k where k.program_id = c.program_id and k.code_id = c.id and k.ip_hash = input.ip and k.created_at >= ? limit 1
  ) recent_ip on true
  left join lateral (
    select 1 as hit from clicks k where k.program_id = c.program_id and k.code_id = c.id and k.ip_hash = input.ip and k.vid is null and k.created_at >= ? limit 1
  ) unclaimed on true`;

async function factsOf(db: Knex, inputs: ClickInput[], since: Date): Promise<ClickFacts[]> {
  const params = [
    inputs.map((_, i) => i),
    inputs.map((input) => input.code.toLowerCase()),
    inputs.map((input) => input.vid ?? null),
    inputs.map((input) => input.ipHash ?? null),
    since,
    since,
    since,
  ];
  const result = await prepared(db, 'click_facts', FACTS_SQL, params);
  return result.rows as ClickFacts[];
}

/** The batch's rollups, rejected-code decisions and new clicks: one statement, one round trip. */
const WRITE_SQL = `with ${ROLLUP_CTES},
  rejected as (insert into decisions (program_id, subject, outcome, reason, code)
    select program_id, 'click', 'rejected', reason, code from unnest(?::uuid[], ?::text[], ?::text[]) as r(program_id, reason, code))
  insert into clicks (${CLICK_COLUMNS.join(', ')})
    select * from unnest(?::uuid[], ?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])`;

/**
 * Records a batch of clicks in two round trips: one read of what the database knows,
 * one statement writing the clicks, rollups and decisions. A click is stored unless
 * the same visitor clicked the same code within the hour; a snippet click that follows
 * a redirect-link click (same code and IP, no visitor id yet) claims that click
 * instead of counting the landing twice. Batches run one at a time (ingest.ts), so
 * each sees what the previous one wrote.
 */
export async function recordClicks(db: Knex, inputs: ClickInput[]): Promise<ClickResult[]> {
  const since = new Date(Date.now() - CLICK_DEDUPE_MS);
  const facts = await factsOf(db, inputs, since);
  const results: ClickResult[] = new Array(inputs.length);
  const rejected: Array<{ program_id: string; reason: string; code: string }> = [];
  const rows: ClickRow[] = [];
  const stats: StatsDelta[] = [];
  // What this batch itself adds, on top of what the database knew.
  const seenVid = new Set<string>();
  const seenIp = new Set<string>();
  const claimedIp = new Set<string>();
  const knownVisitors = new Set<string>();
  for (const fact of facts) {
    const input = inputs[fact.i] as ClickInput;
    if (!fact.id || fact.program_id !== input.programId || fact.disabled_at) {
      results[fact.i] = { valid: false };
      const reason = fact.id && fact.program_id === input.programId ? 'code_disabled' : 'unknown_code';
      rejected.push({ program_id: input.programId, reason, code: input.code.slice(0, 64) });
      continue;
    }
    const code: CodeRow = { id: fact.id, program_id: fact.program_id, participant_id: fact.participant_id as string, code: fact.code as string, disabled_at: null, created_at: fact.created_at as Date };
    const vidKey = `${code.id}|${input.vid}`;
    const ipKey = `${code.id}|${input.ipHash}`;
    const visitorKey = `${input.programId}|${input.vid}`;
    const knownVisitor = fact.known_visitor || knownVisitors.has(visitorKey);
    let stored = false;
    if (input.vid ? fact.recent_vid || seenVid.has(vidKey) : input.ipHash && (fact.recent_ip || seenIp.has(ipKey))) {
      stored = false;
    } else if (input.vid && fact.unclaimed && !claimedIp.has(ipKey) && (await claimRedirectClick(db, code, input, since))) {
      claimedIp.add(ipKey);
      seenVid.add(vidKey);
      // The redirect click counted a new visitor; a visitor we already knew takes it back.
      if (knownVisitor) stats.push({ programId: input.programId, participantId: code.participant_id, visitors: -1 });
      knownVisitors.add(visitorKey);
    } else {
      stored = true;
      if (input.vid) {
        seenVid.add(vidKey);
        knownVisitors.add(visitorKey);
      }
      if (input.ipHash) seenIp.add(ipKey);
      stats.push({ programId: input.programId, participantId: code.participant_id, clicks: 1, visitors: input.vid && knownVisitor ? 0 : 1 });
      rows.push({
        program_id: input.programId,
        code_id: code.id,
        participant_id: code.participant_id,
        vid: input.vid ?? null,
        url: input.url?.slice(0, 2048) ?? null,
        referrer: input.referrer?.slice(0, 2048) ?? null,
        ip_hash: input.ipHash ?? null,
        user_agent: input.userAgent?.slice(0, 512) ?? null,
      });
    }
    results[fact.i] = { valid: true, code, stored };
  }
  await prepared(db, 'click_write', WRITE_SQL, [
    ...rollupParams(stats),
    ...columnsOf(rejected, ['program_id', 'reason', 'code']),
    ...columnsOf(rows, CLICK_COLUMNS),
  ]);
  return results;
}

/** Gives a visitor id to the redirect-link click it follows; true when there was one. */
async function claimRedirectClick(db: Knex, code: CodeRow, input: ClickInput, since: Date): Promise<boolean> {
  const claimed = await db('clicks')
    .whereIn(
      'id',
      db('clicks').select('id').where({ code_id: code.id, ip_hash: input.ipHash }).whereNull('vid').where('created_at', '>=', since).orderBy('created_at', 'desc').limit(1),
    )
    .update({ vid: input.vid, url: input.url?.slice(0, 2048) ?? null, referrer: input.referrer?.slice(0, 2048) ?? null });
  return claimed > 0;
}

/** The landing URL with `ref=CODE` added, keeping the landing URL's own query. */
export function landingUrlFor(landingUrl: string, code: string): string {
  const url = new URL(landingUrl);
  url.searchParams.set('ref', code);
  return url.toString();
}
