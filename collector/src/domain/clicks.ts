/**
 * Clicks: every landing through a referral link, from the snippet or a redirect
 * link. Written in batches (see storage/groupCommit.ts): one transaction, a few
 * set-based statements per batch, whatever its size.
 */
import type { Knex } from 'knex';
import type { CodeRow } from './codes.ts';
import { recordDecisions, type DecisionInput } from './decisions.ts';
import { bumpStats, type StatsDelta } from './rollups.ts';

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

type Accepted = { index: number; input: ClickInput; code: CodeRow };

/** Finds each click's code, keeping those that are live codes of the click's own program. */
async function resolveCodes(trx: Knex, inputs: ClickInput[], results: ClickResult[], decisions: DecisionInput[]): Promise<Accepted[]> {
  const lowered = [...new Set(inputs.map((input) => input.code.toLowerCase()))];
  const rows = (await trx('codes').whereIn(trx.raw('lower(code)') as unknown as string, lowered)) as CodeRow[];
  const byCode = new Map(rows.map((row) => [row.code.toLowerCase(), row]));
  const accepted: Accepted[] = [];
  inputs.forEach((input, index) => {
    const code = byCode.get(input.code.toLowerCase());
    if (code && code.program_id === input.programId && !code.disabled_at) {
      accepted.push({ index, input, code });
      return;
    }
    results[index] = { valid: false };
    const reason = code && code.program_id === input.programId ? 'code_disabled' : 'unknown_code';
    decisions.push({ programId: input.programId, subject: 'click', outcome: 'rejected', reason, code: input.code.slice(0, 64) });
  });
  return accepted;
}

/**
 * The "codeId|key" pairs already clicked within the dedupe window, and among them
 * the ones with a redirect-link click still waiting for its visitor id.
 */
async function recentPairs(trx: Knex, column: 'vid' | 'ip_hash', pairs: Array<[string, string]>, since: Date) {
  const seen = new Set<string>();
  const unclaimed = new Set<string>();
  if (!pairs.length) return { seen, unclaimed };
  const rows = (await trx('clicks')
    .where('created_at', '>=', since)
    .whereIn(['code_id', column], pairs)
    .groupBy('code_id', column)
    .select('code_id', `${column} as key`, trx.raw('bool_or(vid is null) as unclaimed'))) as Array<{ code_id: string; key: string; unclaimed: boolean }>;
  for (const row of rows) {
    seen.add(`${row.code_id}|${row.key}`);
    if (row.unclaimed) unclaimed.add(`${row.code_id}|${row.key}`);
  }
  return { seen, unclaimed };
}

/**
 * Records a batch of clicks. A click is stored unless the same visitor clicked the same
 * code within the hour; a snippet click that follows a redirect-link click (same code
 * and IP, no visitor id yet) claims that click instead of counting the landing twice.
 */
export async function recordClicks(db: Knex, inputs: ClickInput[]): Promise<ClickResult[]> {
  return db.transaction(async (trx) => {
    const results: ClickResult[] = new Array(inputs.length);
    const decisions: DecisionInput[] = [];
    const accepted = await resolveCodes(trx, inputs, results, decisions);
    const since = new Date(Date.now() - CLICK_DEDUPE_MS);
    const withVid = accepted.filter((a) => a.input.vid);
    const seenVid = (await recentPairs(trx, 'vid', withVid.map((a) => [a.code.id, a.input.vid as string]), since)).seen;
    const byIp = await recentPairs(trx, 'ip_hash', accepted.filter((a) => a.input.ipHash).map((a) => [a.code.id, a.input.ipHash as string]), since);
    const seenIp = byIp.seen;
    const knownVisitors = new Set(
      withVid.length
        ? ((await trx('clicks').whereIn(['program_id', 'vid'], withVid.map((a) => [a.input.programId, a.input.vid as string])).distinct('program_id', 'vid')) as Array<{ program_id: string; vid: string }>).map(
            (row) => `${row.program_id}|${row.vid}`,
          )
        : [],
    );

    const rows: Array<Record<string, unknown>> = [];
    const stats: StatsDelta[] = [];
    for (const { index, input, code } of accepted) {
      const vidKey = `${code.id}|${input.vid}`;
      const ipKey = `${code.id}|${input.ipHash}`;
      let stored = false;
      if (input.vid ? seenVid.has(vidKey) : input.ipHash && seenIp.has(ipKey)) {
        stored = false;
      } else if (input.vid && byIp.unclaimed.has(ipKey) && (await claimRedirectClick(trx, code, input, since))) {
        byIp.unclaimed.delete(ipKey);
        seenVid.add(vidKey);
        // The redirect click counted a new visitor; a visitor we already knew takes it back.
        const visitorKey = `${input.programId}|${input.vid}`;
        if (knownVisitors.has(visitorKey)) stats.push({ programId: input.programId, participantId: code.participant_id, visitors: -1 });
        knownVisitors.add(visitorKey);
      } else {
        stored = true;
        if (input.vid) seenVid.add(vidKey);
        if (input.ipHash) seenIp.add(ipKey);
        const visitorKey = `${input.programId}|${input.vid}`;
        const newVisitor = !input.vid || !knownVisitors.has(visitorKey);
        if (input.vid) knownVisitors.add(visitorKey);
        stats.push({ programId: input.programId, participantId: code.participant_id, clicks: 1, visitors: newVisitor ? 1 : 0 });
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
      results[index] = { valid: true, code, stored };
    }
    if (rows.length) await trx('clicks').insert(rows);
    await bumpStats(trx, stats);
    await recordDecisions(trx, decisions);
    return results;
  });
}

/** Gives a visitor id to the redirect-link click it follows; true when there was one. */
async function claimRedirectClick(trx: Knex, code: CodeRow, input: ClickInput, since: Date): Promise<boolean> {
  const claimed = await trx('clicks')
    .whereIn(
      'id',
      trx('clicks').select('id').where({ code_id: code.id, ip_hash: input.ipHash }).whereNull('vid').where('created_at', '>=', since).orderBy('created_at', 'desc').limit(1),
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
