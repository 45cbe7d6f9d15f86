/**
 * "Is this code usable" has one home (domain/codes.ts codeRefusal) and one SQL twin
 * for the click batch (codeRefusalSql): on every database, both give the same answer
 * for every kind of code, and every entry point (clicks, links, conversions) records
 * the same reasons.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { codeRefusal, codeRefusalSql, type CodeRow } from '../../collector/src/domain/codes.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { newVid, buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { click, conversion, decisions } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

describe.each(DATABASES)('the code rule (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  async function setUp() {
    const home = await buildProgram(api);
    const other = await buildProgram(api);
    const live = await buildParticipant(api, home);
    const disabled = await buildParticipant(api, home);
    await db('codes').where({ code: disabled.code }).update({ disabled_at: db.fn.now() });
    const foreign = await buildParticipant(api, other);
    return { home, codes: { live: live.code, disabled: disabled.code, foreign: foreign.code, missing: 'NOPE2345' } };
  }

  const inSql = async (code: string, programId: string) => {
    const result = await db.raw(
      `select ${codeRefusalSql('c', '?::uuid')} as refusal from (select 1) one left join codes c on lower(c.code) = lower(?)`,
      [programId, code],
    );
    return (result.rows[0] as { refusal: string | null }).refusal;
  };
  const inCode = async (code: string, programId: string) =>
    codeRefusal((await db('codes').whereRaw('lower(code) = lower(?)', [code]).first()) as CodeRow | undefined, programId);

  it('TypeScript and SQL agree, case by case', async () => {
    const { home, codes } = await setUp();
    const expected = { live: null, disabled: 'code_disabled', foreign: 'unknown_code', missing: 'unknown_code' };
    for (const [name, code] of Object.entries(codes)) {
      const want = expected[name as keyof typeof expected];
      expect(await inCode(code, home.id), name).toBe(want);
      expect(await inSql(code, home.id), name).toBe(want);
      expect(await inSql(code.toLowerCase(), home.id), `${name}, lower case`).toBe(want);
    }
  });

  it('clicks, links and conversions record the same reasons', async () => {
    const { home, codes } = await setUp();
    const reasons = async (p: ProgramFixture) => (await decisions(api, p)).map((d) => `${d.reason}:${d.code}`).sort();

    for (const code of [codes.disabled, codes.foreign]) await click(api, home, { code, vid: newVid() }, { valid: false });
    expect((await api.get(`/r/${codes.disabled}`)).status).toBe(302);
    for (const code of [codes.disabled, codes.foreign]) {
      const answer = await conversion(api, home, { type: 'signup', eventId: uniq('e-'), externalId: uniq('u-'), referral: { code } });
      expect(answer.attribution.status).toBe('rejected');
    }
    expect(await reasons(home)).toEqual(
      [
        `code_disabled:${codes.disabled}`, // click
        `code_disabled:${codes.disabled}`, // link
        `code_disabled:${codes.disabled}`, // conversion
        `unknown_code:${codes.foreign}`, // click
        `unknown_code:${codes.foreign}`, // conversion
      ].sort(),
    );
  });
});
