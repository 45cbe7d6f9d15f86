/**
 * Referral links, `/r/CODE`: a code names its program (codes are unique across the
 * collector), so the link needs nothing else. A live code sends the visitor to its
 * program's landing URL with `?ref=CODE`; never anywhere else.
 */
import type { Knex } from 'knex';
import { codeRefusal, findCode, type CodeRefusal } from './codes.ts';
import { recordDecision } from './decisions.ts';
import { findProgram } from './programs.ts';

export type Link =
  | { refusal: null; programId: string; code: string; destination: string }
  | { refusal: 'code_disabled'; programId: string; code: string; landingUrl: string }
  | { refusal: 'unknown_code' };

/**
 * What a link leads to. A disabled code is recorded as a rejected click of its program
 * (an unknown one has no program to record it in).
 */
export async function resolveLink(db: Knex, text: string): Promise<Link> {
  const code = await findCode(db, text);
  const refusal: CodeRefusal | null = codeRefusal(code);
  const program = code ? await findProgram(db, code.program_id) : undefined;
  if (!code || !program) return { refusal: 'unknown_code' };
  if (refusal === 'code_disabled') {
    await recordDecision(db, { programId: program.id, subject: 'click', outcome: 'rejected', reason: refusal, code: code.code });
    return { refusal, programId: program.id, code: code.code, landingUrl: program.settings.landingUrl };
  }
  return { refusal: null, programId: program.id, code: code.code, destination: landingUrlFor(program.settings.landingUrl, code.code) };
}

/** True when a click on this program's key would count for `text` (see codeRefusal). */
export async function isUsableCode(db: Knex, programId: string, text: string): Promise<boolean> {
  return codeRefusal(await findCode(db, text), programId) === null;
}

/** The landing URL with `ref=CODE` added, keeping the landing URL's own query. */
export function landingUrlFor(landingUrl: string, code: string): string {
  const url = new URL(landingUrl);
  url.searchParams.set('ref', code);
  return url.toString();
}
