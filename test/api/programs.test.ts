/**
 * Programs through the real app, on every database: the operator creates them with
 * the admin token (default settings, two keys shown once and stored only as hashes),
 * and is refused without it.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { buildProgram, DEFAULT_SETTINGS, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectValidation } from '../helpers/steps.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';

const UNAUTHORIZED_ADMIN = { error: { code: 'unauthorized', message: 'A valid admin token is required' } };

/** Decodes the random part of a key and returns its byte length. */
const keyBytes = (key: string) => Buffer.from(key.slice(3), 'base64url').length;

describe.each(DATABASES)('programs (%s)', (kind) => {
  let testDb: TestDb;
  let api: TestApp;
  let startApp: Suite['startApp'];
  let program: ProgramFixture;
  let other: ProgramFixture;

  useTestApp(kind, (suite) => ({ testDb, api, startApp } = suite));
  beforeAll(async () => {
    program = await buildProgram(api);
    other = await buildProgram(api);
  });

  describe('POST /v1/programs (operator)', () => {
    it('creates a program with default settings and both keys', async () => {
      const name = `Shop ${uniq()}`;
      const reply = await api.post(
        '/v1/programs',
        { name, origins: ['https://shop.example/some/path'], landingUrl: 'https://shop.example/welcome' },
        { auth: ADMIN_TOKEN },
      );
      expect(reply.status, reply.text).toBe(201);
      const { program: created, keys } = reply.body;
      expect(created).toMatchObject({ name, slug: name.toLowerCase().replace(/ /g, '-'), settings: DEFAULT_SETTINGS });
      expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Object.keys(keys).sort()).toEqual(['publishable', 'secret']);
      expect(keys.publishable).toMatch(/^pk_[A-Za-z0-9_-]+$/);
      expect(keys.secret).toMatch(/^sk_[A-Za-z0-9_-]+$/);
      expect(keyBytes(keys.publishable)).toBeGreaterThanOrEqual(24);
      expect(keyBytes(keys.secret)).toBeGreaterThanOrEqual(24);
      expect(keys.publishable.slice(3)).not.toBe(keys.secret.slice(3));

      const again = await api.get('/v1/program', { auth: keys.secret });
      expect(again.status).toBe(200);
      expect(again.body.program).toEqual(created);
    });

    it('gives two programs with the same name different slugs and different keys', async () => {
      const name = `Twin ${uniq()}`;
      const a = await buildProgram(api, { name });
      const b = await buildProgram(api, { name });
      expect(a.slug).not.toBe(b.slug);
      expect(a.id).not.toBe(b.id);
      expect(new Set([a.secret, b.secret, a.publishable, b.publishable]).size).toBe(4);
    });

    it('stores only a SHA-256 hash of each key, never the key itself', async () => {
      const rows = (await testDb.db('api_keys').where({ program_id: program.id })) as Array<Record<string, unknown>>;
      expect(rows.map((row) => row.kind).sort()).toEqual(['publishable', 'secret']);
      for (const row of rows) {
        const key = row.kind === 'secret' ? program.secret : program.publishable;
        expect(row.hash).toBe(createHash('sha256').update(key).digest('hex'));
        const stored = JSON.stringify(row);
        expect(stored).not.toContain(key);
        expect(stored).not.toContain(key.slice(3));
      }
      const { rows: dump } = (await testDb.db.raw('select row_to_json(k)::text as row from api_keys k')) as {
        rows: Array<{ row: string }>;
      };
      for (const { row } of dump) {
        for (const key of [program.secret, program.publishable, other.secret, other.publishable]) expect(row).not.toContain(key.slice(3));
      }
    });

    it('never shows the keys again', async () => {
      const reply = await api.get('/v1/program', { auth: program.secret });
      expect(reply.status).toBe(200);
      expect(reply.text).not.toContain(program.secret.slice(3));
      expect(reply.text).not.toContain(program.publishable.slice(3));
    });

    it('answers 401 for a wrong, missing or non-admin token', async () => {
      const body = { name: 'Nope', origins: ['https://x.example'], landingUrl: 'https://x.example/' };
      const before = Number(((await testDb.db('programs').count({ n: '*' })) as Array<{ n: number }>)[0]?.n);
      for (const auth of [`${ADMIN_TOKEN}x`, undefined, program.secret, 'Bearer']) {
        const reply = await api.post('/v1/programs', body, auth === undefined ? {} : { auth });
        expect(reply.status, String(auth)).toBe(401);
        expect(reply.body).toEqual(UNAUTHORIZED_ADMIN);
        expect(reply.headers.get('www-authenticate')).toBe('Bearer');
      }
      const after = Number(((await testDb.db('programs').count({ n: '*' })) as Array<{ n: number }>)[0]?.n);
      expect(after).toBe(before);
    });

    it('answers 403 when ADMIN_TOKEN is not configured', async () => {
      const noAdmin = await startApp({ ADMIN_TOKEN: '' });
      const reply = await noAdmin.post('/v1/programs', { name: 'x', origins: [], landingUrl: 'https://x.example/' }, { auth: ADMIN_TOKEN });
      expect(reply.status).toBe(403);
      expect(reply.body).toEqual({ error: { code: 'forbidden', message: 'The operator API is disabled: set ADMIN_TOKEN to enable it' } });
    });

    it('answers 422 with field messages for a bad program', async () => {
      const missingName = expectValidation(
        await api.post('/v1/programs', { origins: [], landingUrl: 'https://x.example/' }, { auth: ADMIN_TOKEN }),
      );
      expect(Object.keys(missingName)).toEqual(['name']);

      const badSettings = expectValidation(
        await api.post(
          '/v1/programs',
          { name: 'Bad', origins: ['https://x.example'], landingUrl: 'https://x.example/', settings: { cookieDays: 0 } },
          { auth: ADMIN_TOKEN },
        ),
      );
      expect(Object.keys(badSettings)).toEqual(['settings.cookieDays']);
    });

    it('keys field errors on landingUrl and origins by their place in the request body', async () => {
      const fields = expectValidation(
        await api.post('/v1/programs', { name: 'Bad', origins: ['javascript:alert(1)'], landingUrl: 'not a url' }, { auth: ADMIN_TOKEN }),
      );
      expect(fields).toEqual({ 'origins.0': 'must be an http(s) URL', landingUrl: 'must be an http(s) URL' });
    });
  });
});
