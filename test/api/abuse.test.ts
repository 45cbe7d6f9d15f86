/**
 * Abuse from the open internet, through the real app on every database: CORS
 * preflights spend the per-IP budget like the requests they announce, and the
 * per-IP unknown-code budget (against code enumeration) is spent by unknown codes
 * only: on redirect links, browser clicks and vanity codes asked for in
 * `POST /v1/participants` (codes are unique across the collector, so a taken code
 * says that it exists). Live links keep working for an IP that spent its budget
 * (a shared office NAT where someone probed).
 */
import { describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, newVid, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectLimited, sendClick } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';

const PUBLIC_LIMIT = 12;
const UNKNOWN_BUDGET = 3;
const ORIGIN = 'https://shop.example';

/** A client address no other test in this file uses (X-Forwarded-For, TRUST_PROXY on). */
let lastIp = 0;
const freshIp = () => `198.51.100.${++lastIp}`;

describe.each(DATABASES)('abuse limits (%s)', (kind) => {
  let api: TestApp;
  let db: Knex;
  useTestApp(kind, (suite) => ({ api, db } = suite), {
    env: {
      RATE_LIMIT_PUBLIC_PER_MINUTE: String(PUBLIC_LIMIT),
      RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: String(UNKNOWN_BUDGET),
      TRUST_PROXY: 'true',
    },
  });

  const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });
  const follow = (code: string, ip: string) => api.get(`/r/${encodeURIComponent(code)}`, from(ip));

  describe('CORS preflights', () => {
    it.each(['/v1/clicks', '/v1/events'])('OPTIONS %s past the per-IP budget is 429; another IP is unaffected', async (path) => {
      await buildProgram(api, { origins: [ORIGIN] });
      const ip = freshIp();
      const preflight = (address: string) =>
        api.request('OPTIONS', path, undefined, {
          headers: { 'x-forwarded-for': address, origin: ORIGIN, 'access-control-request-method': 'POST' },
        });
      for (let i = 0; i < PUBLIC_LIMIT; i++) expect((await preflight(ip)).status).toBe(204);
      expectLimited(await preflight(ip));
      const other = await preflight(freshIp());
      expect(other.status).toBe(204);
      expect(other.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    });

    it('preflights and the requests they announce share one budget', async () => {
      const program = await buildProgram(api, { origins: [ORIGIN] });
      const { code } = await buildParticipant(api, program);
      const ip = freshIp();
      for (let i = 0; i < PUBLIC_LIMIT; i++) expect((await api.request('OPTIONS', '/v1/clicks', undefined, from(ip))).status).toBe(204);
      expectLimited(await sendClick(api, program, { code, vid: newVid() }, from(ip)));
    });
  });

  describe('the unknown-code budget spares live links', () => {
    it('GET /r/:code: after the budget, unknown codes are 429 while a live link from the same IP still redirects', async () => {
      const program = await buildProgram(api);
      const { code } = await buildParticipant(api, program);
      const ip = freshIp();
      for (let i = 0; i < UNKNOWN_BUDGET; i++) expect((await follow(`NOPE${uniq()}`, ip)).status).toBe(404);
      expectLimited(await follow(`NOPE${uniq()}`, ip));
      const live = await follow(code, ip);
      expect(live.status, live.text).toBe(302);
      expect(live.headers.get('location')).toContain(`ref=${code}`);
      // The click behind it was recorded.
      expect(Number((await clicksOf(db, program.id).count({ n: '*' }))[0]?.n)).toBe(1);
      // Live links never spent the budget: still refused for unknown codes only.
      expectLimited(await follow(`NOPE${uniq()}`, ip));
      expect((await follow(`NOPE${uniq()}`, freshIp())).status).toBe(404);
    });

    it('POST /v1/clicks: after the budget, a live code is still accepted and an unknown one refused (not recorded)', async () => {
      const program = await buildProgram(api);
      const other = await buildProgram(api);
      const { code } = await buildParticipant(api, program);
      const foreign = (await buildParticipant(api, other)).code;
      const ip = freshIp();
      // Another program's code is unknown to this key.
      for (let i = 0; i < UNKNOWN_BUDGET; i++)
        expect((await sendClick(api, program, { code: i ? `NOPE${uniq()}` : foreign, vid: newVid() }, from(ip))).body).toEqual({
          valid: false,
        });
      const before = Number((await db('decisions').where({ program_id: program.id, reason: 'unknown_code' }).count({ n: '*' }))[0]?.n);
      expectLimited(await sendClick(api, program, { code: `NOPE${uniq()}`, vid: newVid() }, from(ip)));
      expectLimited(await sendClick(api, program, { code: foreign, vid: newVid() }, from(ip)));
      expect(Number((await db('decisions').where({ program_id: program.id, reason: 'unknown_code' }).count({ n: '*' }))[0]?.n)).toBe(
        before,
      );
      const live = await sendClick(api, program, { code, vid: newVid() }, from(ip));
      expect(live.status, live.text).toBe(202);
      expect(live.body).toEqual({ valid: true });
      expect((await follow(code, ip)).status).toBe(302);
    });

    it('a disabled code counts as unknown', async () => {
      const program = await buildProgram(api);
      const { id, code } = await buildParticipant(api, program);
      await db('codes').where({ participant_id: id }).update({ disabled_at: new Date() });
      const ip = freshIp();
      for (let i = 0; i < UNKNOWN_BUDGET; i++) expect((await follow(code, ip)).status).toBe(302);
      expectLimited(await follow(code, ip));
      expectLimited(await sendClick(api, program, { code, vid: newVid() }, from(ip)));
    });
  });

  describe('POST /v1/participants with a vanity code', () => {
    const create = (program: ProgramFixture, ip: string, code?: string) =>
      api.post('/v1/participants', { externalId: uniq('user-'), ...(code ? { code } : {}) }, { auth: program.secret, ...from(ip) });

    it("a taken code (another program's) spends the IP's unknown-code budget; once spent, codes are refused with 429", async () => {
      const owner = await buildProgram(api);
      const prober = await buildProgram(api);
      const taken = await Promise.all(
        Array.from({ length: UNKNOWN_BUDGET + 1 }, async () => (await buildParticipant(api, owner, { code: uniq('Taken_') })).code),
      );
      const ip = freshIp();
      for (const code of taken.slice(0, UNKNOWN_BUDGET)) {
        const reply = await create(prober, ip, code.toLowerCase());
        expect(reply.status, reply.text).toBe(409);
        expect(reply.body.error.code).toBe('code_taken');
      }
      expectLimited(await create(prober, ip, taken[UNKNOWN_BUDGET]));
      // Free codes too: the answer must not tell a taken code from a free one.
      expectLimited(await create(prober, ip, uniq('Free_')));
      // The same budget as the redirect links'.
      expectLimited(await follow(`NOPE${uniq()}`, ip));
      // Requests that ask for no code, and other addresses, are not affected.
      expect((await create(prober, ip)).status).toBe(201);
      const elsewhere = await create(prober, freshIp(), taken[UNKNOWN_BUDGET]);
      expect(elsewhere.status).toBe(409);
      expect((await create(prober, freshIp(), uniq('Free_'))).status).toBe(201);
    });

    it('free codes and repeats of a participant’s own code spend nothing', async () => {
      const program = await buildProgram(api);
      const ip = freshIp();
      const externalId = uniq('user-');
      const code = uniq('Mine_');
      expect((await api.post('/v1/participants', { externalId, code }, { auth: program.secret, ...from(ip) })).status).toBe(201);
      for (let i = 0; i < UNKNOWN_BUDGET + 1; i++) {
        expect((await api.post('/v1/participants', { externalId, code }, { auth: program.secret, ...from(ip) })).status).toBe(200);
        expect((await create(program, ip, uniq('Free_'))).status).toBe(201);
      }
      expect((await follow(`NOPE${uniq()}`, ip)).status).toBe(404);
    });
  });
});
