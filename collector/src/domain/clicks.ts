/**
 * Clicks: every landing through a referral link, from the snippet or a redirect link.
 */
import type { Knex } from 'knex';
import { findCode, type CodeRow } from './codes.ts';
import { recordDecision } from './decisions.ts';
import { bumpStats } from './rollups.ts';

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

/** Finds the program's live code, recording an `unknown_code` decision when there is none. */
export async function resolveCode(db: Knex, programId: string, code: string): Promise<CodeRow | undefined> {
  const row = await findCode(db, code);
  if (row && row.program_id === programId && !row.disabled_at) return row;
  await recordDecision(db, {
    programId,
    subject: 'click',
    outcome: 'rejected',
    reason: row && row.program_id === programId ? 'code_disabled' : 'unknown_code',
    code: code.slice(0, 64),
  });
  return undefined;
}

/**
 * Records a click unless the same visitor clicked the same code within the hour.
 * A snippet click that follows a redirect-link click (same code and IP, no visitor
 * id yet) claims that click instead of counting the landing twice.
 */
export async function recordClick(db: Knex, input: ClickInput): Promise<ClickResult> {
  const code = await resolveCode(db, input.programId, input.code);
  if (!code) return { valid: false };
  const since = new Date(Date.now() - CLICK_DEDUPE_MS);
  const stored = await db.transaction(async (trx) => {
    if (input.vid) {
      const seen = await trx('clicks')
        .where({ program_id: input.programId, code_id: code.id, vid: input.vid })
        .where('created_at', '>=', since)
        .first('id');
      if (seen) return false;
      if (input.ipHash) {
        const claimed = await trx('clicks')
          .where({ program_id: input.programId, code_id: code.id, ip_hash: input.ipHash })
          .whereNull('vid')
          .where('created_at', '>=', since)
          .update({ vid: input.vid, url: input.url ?? null, referrer: input.referrer ?? null });
        if (claimed) return false;
      }
    } else if (input.ipHash) {
      const seen = await trx('clicks')
        .where({ program_id: input.programId, code_id: code.id, ip_hash: input.ipHash })
        .where('created_at', '>=', since)
        .first('id');
      if (seen) return false;
    }
    const returning = input.vid ? await trx('clicks').where({ program_id: input.programId, vid: input.vid }).first('id') : undefined;
    await bumpStats(trx, [{ programId: input.programId, participantId: code.participant_id, clicks: 1, visitors: returning ? 0 : 1 }]);
    await trx('clicks').insert({
      program_id: input.programId,
      code_id: code.id,
      participant_id: code.participant_id,
      vid: input.vid ?? null,
      url: input.url?.slice(0, 2048) ?? null,
      referrer: input.referrer?.slice(0, 2048) ?? null,
      ip_hash: input.ipHash ?? null,
      user_agent: input.userAgent?.slice(0, 512) ?? null,
    });
    return true;
  });
  return { valid: true, code, stored };
}

/** The landing URL with `ref=CODE` added, keeping the landing URL's own query. */
export function landingUrlFor(landingUrl: string, code: string): string {
  const url = new URL(landingUrl);
  url.searchParams.set('ref', code);
  return url.toString();
}
