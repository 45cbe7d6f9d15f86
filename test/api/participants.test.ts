/**
 * Participants and their codes through the real app, on every database: created once
 * (also under concurrent creates), read back with zero stats, externalIds of any text,
 * normalized emails, vanity codes (3–32 of [A-Za-z0-9_-], unique across programs
 * whatever their case) and generated codes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectValidation } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const CODE_PATTERN = /^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$/;
const PARTICIPANT_NOT_FOUND = { error: { code: 'not_found', message: 'Participant not found' } };

describe.each(DATABASES)('participants (%s)', (kind) => {
  let testDb: TestDb;
  let api: TestApp;
  let program: ProgramFixture;
  let other: ProgramFixture;

  useTestApp(kind, (suite) => ({ testDb, api } = suite));
  beforeAll(async () => {
    program = await buildProgram(api);
    other = await buildProgram(api);
  });

  describe('participants and codes', () => {
    it('creates a participant once: 201, then 200 with the same id and code', async () => {
      const externalId = uniq('user-');
      const first = await api.post('/v1/participants', { externalId }, { auth: program.secret });
      expect(first.status, first.text).toBe(201);
      expect(first.body).toMatchObject({ externalId, link: `${api.url}/r/${first.body.code}` });
      expect(first.body.code).toMatch(CODE_PATTERN);
      expect(first.body.id).toMatch(/^[0-9a-f-]{36}$/);

      const second = await api.post('/v1/participants', { externalId }, { auth: program.secret });
      expect(second.status).toBe(200);
      expect(second.body).toEqual(first.body);
      const rows = await testDb.db('participants').where({ program_id: program.id, external_id: externalId });
      expect(rows).toHaveLength(1);
      expect(await testDb.db('codes').where({ participant_id: first.body.id })).toHaveLength(1);
    });

    it('stays idempotent under concurrent creates', async () => {
      const externalId = uniq('race-');
      const replies = await Promise.all(
        Array.from({ length: 6 }, () => api.post('/v1/participants', { externalId }, { auth: program.secret })),
      );
      expect(replies.map((reply) => reply.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
      expect(new Set(replies.map((reply) => reply.body.id)).size).toBe(1);
      expect(new Set(replies.map((reply) => reply.body.code)).size).toBe(1);
    });

    it('GET /v1/participants/:externalId answers with zero stats and reward sums', async () => {
      const participant = await buildParticipant(api, program);
      const reply = await api.get(`/v1/participants/${participant.externalId}`, { auth: program.secret });
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({
        id: participant.id,
        externalId: participant.externalId,
        code: participant.code,
        link: participant.link,
        referredBy: null,
        stats: { clicks: 0, signups: 0, purchases: 0, revenue: {} },
        rewards: { pending: {}, approved: {}, paid: {} },
      });
      expect(reply.body.stats).toEqual({ clicks: 0, signups: 0, purchases: 0, revenue: {} });
      expect(reply.body.rewards).toEqual({ pending: {}, approved: {}, paid: {} });
    });

    it('answers 404 for an unknown participant', async () => {
      const reply = await api.get('/v1/participants/nobody-here', { auth: program.secret });
      expect(reply.status).toBe(404);
      expect(reply.body).toEqual(PARTICIPANT_NOT_FOUND);
    });

    it('accepts any externalId of 1–255 characters, also in the URL', async () => {
      for (const externalId of ['x', 'a'.repeat(255), 'user 42/ü?#%&', 'ümlaut@example.com']) {
        const created = await api.post('/v1/participants', { externalId }, { auth: program.secret });
        expect(created.status, externalId).toBe(201);
        expect(created.body.externalId).toBe(externalId);
        const fetched = await api.get(`/v1/participants/${encodeURIComponent(externalId)}`, { auth: program.secret });
        expect(fetched.status, externalId).toBe(200);
        expect(fetched.body).toMatchObject({ id: created.body.id, externalId });
      }
    });

    it('refuses an externalId of 0 or 256 characters with 422', async () => {
      for (const body of [{ externalId: 'a'.repeat(256) }, { externalId: '' }, {}, { externalId: 42 }]) {
        const fields = expectValidation(await api.post('/v1/participants', body, { auth: program.secret }));
        expect(Object.keys(fields), JSON.stringify(body)).toEqual(['externalId']);
      }
      const fields = expectValidation(await api.get(`/v1/participants/${'a'.repeat(256)}`, { auth: program.secret }));
      expect(Object.keys(fields)).toEqual(['externalId']);
    });

    it('normalizes emails (trimmed, lower-case) and refuses bad ones', async () => {
      const externalId = uniq('mail-');
      const created = await api.post(
        '/v1/participants',
        { externalId, email: '  Alice.Smith@Example.COM ', name: 'Alice' },
        { auth: program.secret },
      );
      expect(created.status).toBe(201);
      expect(created.body.email).toBe('alice.smith@example.com');
      const fetched = await api.get(`/v1/participants/${externalId}`, { auth: program.secret });
      expect(fetched.body).toMatchObject({ email: 'alice.smith@example.com', name: 'Alice' });
      const row = (await testDb.db('participants').where({ program_id: program.id, external_id: externalId }).first()) as { email: string };
      expect(row.email).toBe('alice.smith@example.com');

      const fields = expectValidation(
        await api.post('/v1/participants', { externalId: uniq(), email: 'not-an-email' }, { auth: program.secret }),
      );
      expect(fields).toEqual({ email: 'must be an email address' });
    });

    it('accepts vanity codes of 3–32 characters of [A-Za-z0-9_-]', async () => {
      for (const code of [`a${uniq().slice(0, 2)}`, `V_${uniq()}-${'x'.repeat(20)}`.slice(0, 32), `Mixed-Case_${uniq()}`]) {
        const reply = await api.post('/v1/participants', { externalId: uniq('vanity-'), code }, { auth: program.secret });
        expect(reply.status, code).toBe(201);
        expect(reply.body.code).toBe(code);
        expect(reply.body.link).toBe(`${api.url}/r/${code}`);
      }
    });

    it.each(['ab', 'x'.repeat(33), 'has space', 'dot.ted', 'ünï', 'semi;colon', ''])(
      'refuses the vanity code %j with 422',
      async (code) => {
        const fields = expectValidation(await api.post('/v1/participants', { externalId: uniq('bad-'), code }, { auth: program.secret }));
        expect(fields).toEqual({ code: 'must be 3–32 characters of A–Z, a–z, 0–9, _ or -' });
      },
    );

    it('keeps codes unique across programs, ignoring case: 409 code_taken, and nothing half-created', async () => {
      const code = `Promo_${uniq()}`;
      const owner = await api.post('/v1/participants', { externalId: uniq('owner-'), code }, { auth: program.secret });
      expect(owner.status).toBe(201);

      const thiefId = uniq('thief-');
      for (const [fixture, attempt] of [
        [other, code.toLowerCase()],
        [other, code.toUpperCase()],
        [program, code],
      ] as const) {
        const reply = await api.post('/v1/participants', { externalId: thiefId, code: attempt }, { auth: fixture.secret });
        expect(reply.status, attempt).toBe(409);
        expect(reply.body).toEqual({ error: { code: 'code_taken', message: `The code "${attempt}" is already taken` } });
      }
      // The failed create left no participant behind.
      expect((await api.get(`/v1/participants/${thiefId}`, { auth: other.secret })).status).toBe(404);
      expect(await testDb.db('participants').where({ external_id: thiefId })).toHaveLength(0);
    });

    it('refuses a vanity code equal to a generated code in lower case', async () => {
      const generated = await buildParticipant(api, program);
      const reply = await api.post('/v1/participants', { externalId: uniq(), code: generated.code.toLowerCase() }, { auth: other.secret });
      expect(reply.status).toBe(409);
      expect(reply.body.error.code).toBe('code_taken');
    });

    it('keeps the code on a repeated create: the same code in any case is fine, another code is a conflict', async () => {
      const externalId = uniq('keep-');
      const code = `Keep${uniq()}`;
      const first = await api.post('/v1/participants', { externalId, code }, { auth: program.secret });
      expect(first.status).toBe(201);
      const same = await api.post('/v1/participants', { externalId, code: code.toUpperCase() }, { auth: program.secret });
      expect(same.status).toBe(200);
      expect(same.body).toMatchObject({ id: first.body.id, code });
      const plain = await api.post('/v1/participants', { externalId }, { auth: program.secret });
      expect(plain.status).toBe(200);
      expect(plain.body.code).toBe(code);

      const changed = await api.post('/v1/participants', { externalId, code: `Other${uniq()}` }, { auth: program.secret });
      expect(changed.status).toBe(409);
      expect(changed.body.error.code).toBe('participant_exists');
      expect((await api.get(`/v1/participants/${externalId}`, { auth: program.secret })).body.code).toBe(code);
    });

    it('gives generated codes that differ between participants', async () => {
      const codes = await Promise.all(Array.from({ length: 20 }, () => buildParticipant(api, program).then((p) => p.code)));
      for (const code of codes) expect(code).toMatch(CODE_PATTERN);
      expect(new Set(codes.map((code) => code.toLowerCase())).size).toBe(codes.length);
    });
  });
});
