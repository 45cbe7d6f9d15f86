/**
 * Secret keys through the real app, on every database: every secret-key route refuses
 * no key, a publishable key, an unknown, revoked or admin token with 401, accepts
 * `Bearer` in any case, and only ever reaches the key's own program.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { useTestApp } from '../helpers/suite.ts';

const UNAUTHORIZED_NO_KEY = { error: { code: 'unauthorized', message: 'Send your secret key as "Authorization: Bearer sk_…"' } };
const UNAUTHORIZED_PUBLISHABLE = { error: { code: 'unauthorized', message: 'A publishable key cannot be used here; use a secret key' } };
const UNAUTHORIZED_UNKNOWN = { error: { code: 'unauthorized', message: 'Unknown or revoked secret key' } };
const PARTICIPANT_NOT_FOUND = { error: { code: 'not_found', message: 'Participant not found' } };

describe.each(DATABASES)('authentication (%s)', (kind) => {
  let testDb: TestDb;
  let api: TestApp;
  let program: ProgramFixture;
  let other: ProgramFixture;

  useTestApp(kind, (suite) => ({ testDb, api } = suite));
  beforeAll(async () => {
    program = await buildProgram(api);
    other = await buildProgram(api);
  });

  describe('secret-key authentication and scoping', () => {
    const secretRoutes: Array<[string, string, unknown?]> = [
      ['GET', '/v1/program'],
      ['PATCH', '/v1/program', { settings: { cookieDays: 10 } }],
      ['POST', '/v1/participants', { externalId: 'someone' }],
      ['GET', '/v1/participants/someone'],
    ];

    it.each(secretRoutes)('%s %s answers 401 without a key', async (method, path, body) => {
      const reply = await api.request(method, path, body);
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual(UNAUTHORIZED_NO_KEY);
      expect(reply.headers.get('www-authenticate')).toBe('Bearer');
    });

    it.each(secretRoutes)('%s %s answers 401 to a publishable key', async (method, path, body) => {
      const reply = await api.request(method, path, body, { auth: program.publishable });
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual(UNAUTHORIZED_PUBLISHABLE);
    });

    it.each(secretRoutes)('%s %s answers 401 to an unknown secret key', async (method, path, body) => {
      const forged = `sk_${'A'.repeat(32)}`;
      const reply = await api.request(method, path, body, { auth: forged });
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual(UNAUTHORIZED_UNKNOWN);
    });

    it('answers 401 to the admin token, to a key in another scheme, and to a revoked key', async () => {
      expect((await api.get('/v1/program', { auth: ADMIN_TOKEN })).body).toEqual(UNAUTHORIZED_UNKNOWN);
      const basic = await api.get('/v1/program', { headers: { authorization: `Basic ${program.secret}` } });
      expect(basic.status).toBe(401);
      expect(basic.body).toEqual(UNAUTHORIZED_NO_KEY);

      const revocable = await buildProgram(api);
      expect((await api.get('/v1/program', { auth: revocable.secret })).status).toBe(200);
      await testDb.db('api_keys').where({ program_id: revocable.id, kind: 'secret' }).update({ revoked_at: testDb.db.fn.now() });
      const revoked = await api.get('/v1/program', { auth: revocable.secret });
      expect(revoked.status).toBe(401);
      expect(revoked.body).toEqual(UNAUTHORIZED_UNKNOWN);
    });

    it('accepts the Bearer scheme in any case', async () => {
      const reply = await api.get('/v1/program', { headers: { authorization: `bearer ${program.secret}` } });
      expect(reply.status).toBe(200);
      expect(reply.body.program.id).toBe(program.id);
    });

    it("answers 404 for another program's participant, and keeps externalIds per program", async () => {
      const externalId = uniq('shared-');
      const mine = await buildParticipant(api, program, { externalId });
      const hidden = await api.get(`/v1/participants/${externalId}`, { auth: other.secret });
      expect(hidden.status).toBe(404);
      expect(hidden.body).toEqual(PARTICIPANT_NOT_FOUND);

      // The same externalId in the other program is a different participant with its own code.
      const theirs = await api.post('/v1/participants', { externalId }, { auth: other.secret });
      expect(theirs.status).toBe(201);
      expect(theirs.body.id).not.toBe(mine.id);
      expect(theirs.body.code).not.toBe(mine.code);
      const mineAgain = await api.get(`/v1/participants/${externalId}`, { auth: program.secret });
      expect(mineAgain.body).toMatchObject({ id: mine.id, code: mine.code });
    });

    it("GET and PATCH /v1/program only ever touch the key's own program", async () => {
      const a = await buildProgram(api);
      const b = await buildProgram(api);
      expect((await api.get('/v1/program', { auth: a.secret })).body.program.id).toBe(a.id);
      expect((await api.get('/v1/program', { auth: b.secret })).body.program.id).toBe(b.id);
      const patched = await api.patch('/v1/program', { settings: { cookieDays: 7 } }, { auth: b.secret });
      expect(patched.status).toBe(200);
      expect(patched.body.program).toMatchObject({ id: b.id, settings: { cookieDays: 7 } });
      expect((await api.get('/v1/program', { auth: a.secret })).body.program.settings.cookieDays).toBe(60);
    });
  });
});
