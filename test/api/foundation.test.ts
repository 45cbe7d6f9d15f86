/**
 * The foundation through the real app, on every database: programs and keys,
 * secret-key scoping, program settings, participants and codes, the error shape,
 * body limits, health/readiness and the OpenAPI document.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../collector/src/storage/db.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectValidation } from '../helpers/steps.ts';

const CODE_PATTERN = /^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$/;
const BODY_LIMIT = 64 * 1024;

const DEFAULT_SETTINGS = {
  origins: ['https://shop.example'],
  landingUrl: 'https://shop.example/welcome',
  cookieDays: 60,
  attribution: 'first',
  windowDays: 60,
  rewardRules: [],
  fraud: { velocityMax: 3, velocityMinutes: 60, disposableDomains: [] },
};

const UNAUTHORIZED_NO_KEY = { error: { code: 'unauthorized', message: 'Send your secret key as "Authorization: Bearer sk_…"' } };
const UNAUTHORIZED_PUBLISHABLE = { error: { code: 'unauthorized', message: 'A publishable key cannot be used here; use a secret key' } };
const UNAUTHORIZED_UNKNOWN = { error: { code: 'unauthorized', message: 'Unknown or revoked secret key' } };
const UNAUTHORIZED_ADMIN = { error: { code: 'unauthorized', message: 'A valid admin token is required' } };
const PARTICIPANT_NOT_FOUND = { error: { code: 'not_found', message: 'Participant not found' } };
const INVALID_JSON = { error: { code: 'invalid_json', message: 'The request body is not valid JSON' } };
const TOO_LARGE = { error: { code: 'payload_too_large', message: `Request bodies are limited to ${BODY_LIMIT} bytes` } };
/** Decodes the random part of a key and returns its byte length. */
const keyBytes = (key: string) => Buffer.from(key.slice(3), 'base64url').length;

/** POSTs a body in chunks without Content-Length (Transfer-Encoding: chunked). */
function postChunked(url: string, path: string, chunks: string[], auth: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url + path,
      { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${auth}` } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        res.on('error', reject);
      },
    );
    // The server may answer 413 and stop reading before every chunk is written.
    req.on('error', () => undefined);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe.each(DATABASES)('foundation (%s)', (kind) => {
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

  describe('health and readiness', () => {
    it('GET /v1/health answers 200 without a key', async () => {
      const reply = await api.get('/v1/health');
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({ status: 'ok' });
    });

    it('GET /v1/ready answers 200 while the database answers', async () => {
      const reply = await api.get('/v1/ready');
      expect(reply.status).toBe(200);
      expect(reply.body).toEqual({ status: 'ready' });
    });

    it('GET /v1/ready answers 503 when the database is unreachable', async () => {
      // PostgreSQL: nothing listens on port 1. PGlite: a handle that has been closed.
      const deadDb =
        kind === 'postgres'
          ? createDb({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere', poolMax: 1 })
          : createDb({ dataDir: null });
      if (kind === 'pglite') await deadDb.destroy();
      const dead = await startTestApp(deadDb);
      try {
        const ready = await dead.get('/v1/ready');
        expect(ready.status).toBe(503);
        expect(ready.body).toEqual({ error: { code: 'unavailable', message: 'The database is unreachable' } });
        expect(ready.headers.get('retry-after')).toBe('2');
        // Liveness does not depend on the database.
        expect((await dead.get('/v1/health')).status).toBe(200);
      } finally {
        await dead.close();
        if (kind === 'postgres') await deadDb.destroy();
      }
    });
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

  describe('GET/PATCH /v1/program settings', () => {
    let target: ProgramFixture;
    beforeAll(async () => {
      target = await buildProgram(api);
    });

    const settingsOf = async (fixture: ProgramFixture) => (await api.get('/v1/program', { auth: fixture.secret })).body.program.settings;

    it('returns the program with its default settings', async () => {
      const reply = await api.get('/v1/program', { auth: target.secret });
      expect(reply.status).toBe(200);
      expect(reply.body.program).toMatchObject({ id: target.id, slug: target.slug, settings: DEFAULT_SETTINGS });
    });

    it('updates settings, normalizing and keeping what was not sent', async () => {
      const rules = [
        { id: 'signup-credit', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 500, currency: 'usd' } },
        {
          id: 'purchase-20',
          on: 'purchase',
          to: 'referrer',
          reward: { kind: 'cash', percent: 20 },
          when: { withinDays: 365 },
          holdDays: 30,
        },
      ];
      const reply = await api.patch(
        '/v1/program',
        {
          name: 'Renamed',
          settings: {
            cookieDays: 30,
            attribution: 'last',
            origins: ['https://a.example/path?q=1', 'http://b.example:8080'],
            rewardRules: rules,
            fraud: { velocityMax: 5 },
          },
        },
        { auth: target.secret },
      );
      expect(reply.status, reply.text).toBe(200);
      const expected = {
        ...DEFAULT_SETTINGS,
        origins: ['https://a.example', 'http://b.example:8080'],
        cookieDays: 30,
        attribution: 'last',
        rewardRules: [{ ...rules[0], reward: { kind: 'credit', amount: 500, currency: 'USD' } }, rules[1]],
        fraud: { velocityMax: 5, velocityMinutes: 60, disposableDomains: [] },
      };
      expect(reply.body.program.name).toBe('Renamed');
      expect(reply.body.program.settings).toMatchObject(expected);
      expect(await settingsOf(target)).toMatchObject(expected);

      // A later patch merges over what is stored.
      const second = await api.patch('/v1/program', { settings: { windowDays: 90 } }, { auth: target.secret });
      expect(second.status).toBe(200);
      expect(await settingsOf(target)).toMatchObject({ ...expected, windowDays: 90 });
    });

    const badPatches: Array<[string, Record<string, unknown>, Record<string, string>]> = [
      [
        'a fixed amount without currency',
        { rewardRules: [{ id: 'r1', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500 } }] },
        { 'settings.rewardRules.0.reward.currency': 'a fixed amount needs a currency' },
      ],
      [
        'a percent on a signup rule',
        { rewardRules: [{ id: 'r1', on: 'signup', to: 'referrer', reward: { kind: 'cash', percent: 10 } }] },
        { 'settings.rewardRules.0.reward.percent': 'percent rewards apply to purchases only' },
      ],
      [
        'duplicate rule ids',
        {
          rewardRules: [
            { id: 'dup', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 100, currency: 'EUR' } },
            { id: 'dup', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 200, currency: 'EUR' } },
          ],
        },
        { 'settings.rewardRules.1.id': 'duplicate rule id "dup"' },
      ],
      [
        'amount and percent together',
        {
          rewardRules: [{ id: 'r1', on: 'purchase', to: 'referrer', reward: { kind: 'cash', amount: 100, percent: 10, currency: 'EUR' } }],
        },
        { 'settings.rewardRules.0.reward.percent': 'give amount or percent, not both' },
      ],
      [
        'a coupon reward without a coupon',
        { rewardRules: [{ id: 'r1', on: 'signup', to: 'referee', reward: { kind: 'coupon' } }] },
        { 'settings.rewardRules.0.reward.coupon': 'a coupon reward needs a coupon' },
      ],
      ['a bad URL in origins', { origins: ['https://ok.example', 'not a url'] }, { 'settings.origins.1': 'must be an http(s) URL' }],
      ['a non-http origin', { origins: ['ftp://files.example'] }, { 'settings.origins.0': 'must be an http(s) URL' }],
      ['a bad landing URL', { landingUrl: 'javascript:alert(1)' }, { 'settings.landingUrl': 'must be an http(s) URL' }],
    ];

    it.each(badPatches)('refuses %s with 422 and a field message', async (_label, settings, fields) => {
      const before = await settingsOf(target);
      const reply = await api.patch('/v1/program', { settings }, { auth: target.secret });
      expect(expectValidation(reply)).toEqual(fields);
      expect(await settingsOf(target)).toEqual(before);
    });

    const badValues: Array<[string, Record<string, unknown>, string]> = [
      ['cookieDays 0', { cookieDays: 0 }, 'settings.cookieDays'],
      ['cookieDays 1.5', { cookieDays: 1.5 }, 'settings.cookieDays'],
      ['windowDays "60"', { windowDays: '60' }, 'settings.windowDays'],
      ['attribution "middle"', { attribution: 'middle' }, 'settings.attribution'],
      [
        'an unknown rule event',
        { rewardRules: [{ id: 'r', on: 'visit', to: 'referrer', reward: { kind: 'credit', amount: 1, currency: 'EUR' } }] },
        'settings.rewardRules.0.on',
      ],
      [
        'a bad currency',
        { rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 1, currency: 'EURO' } }] },
        'settings.rewardRules.0.reward.currency',
      ],
      [
        'a negative amount',
        { rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: -1, currency: 'EUR' } }] },
        'settings.rewardRules.0.reward.amount',
      ],
      [
        'a fractional amount',
        { rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 1.5, currency: 'EUR' } }] },
        'settings.rewardRules.0.reward.amount',
      ],
      ['fraud.velocityMax 0', { fraud: { velocityMax: 0 } }, 'settings.fraud.velocityMax'],
    ];

    it.each(badValues)('refuses %s with 422 keyed on the field', async (_label, settings, field) => {
      const before = await settingsOf(target);
      const fields = expectValidation(await api.patch('/v1/program', { settings }, { auth: target.secret }));
      expect(Object.keys(fields)).toEqual([field]);
      expect(fields[field]?.length).toBeGreaterThan(0);
      expect(await settingsOf(target)).toEqual(before);
    });

    it('refuses unknown settings and a non-object body with 422', async () => {
      const unknown = expectValidation(await api.patch('/v1/program', { settings: { cookieDayz: 5 } }, { auth: target.secret }));
      expect(Object.keys(unknown)).toEqual(['settings']);
      expect(unknown.settings).toContain('cookieDayz');

      const list = await api.patch('/v1/program', [1, 2], { auth: target.secret });
      expectValidation(list);
      const emptyName = expectValidation(await api.patch('/v1/program', { name: '   ' }, { auth: target.secret }));
      expect(Object.keys(emptyName)).toEqual(['name']);
    });

    it('lists every bad rule at once', async () => {
      const fields = expectValidation(
        await api.patch(
          '/v1/program',
          {
            settings: {
              rewardRules: [
                { id: 'a', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500 } },
                { id: 'b', on: 'signup', to: 'referrer', reward: { kind: 'cash', percent: 5 } },
              ],
            },
          },
          { auth: target.secret },
        ),
      );
      expect(fields).toEqual({
        'settings.rewardRules.0.reward.currency': 'a fixed amount needs a currency',
        'settings.rewardRules.1.reward.percent': 'percent rewards apply to purchases only',
      });
    });
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

  describe('request bodies and the error shape', () => {
    it('answers 400 invalid_json to malformed JSON', async () => {
      for (const raw of ['{"externalId":', '{externalId: "x"}', 'nope', '{"a":1}}']) {
        const reply = await api.post('/v1/participants', undefined, {
          auth: program.secret,
          raw,
          headers: { 'content-type': 'application/json' },
        });
        expect(reply.status, raw).toBe(400);
        expect(reply.body).toEqual(INVALID_JSON);
      }
      const plain = await api.post('/v1/participants', undefined, {
        auth: program.secret,
        raw: '{oops',
        headers: { 'content-type': 'text/plain' },
      });
      expect(plain.status).toBe(400);
      expect(plain.body).toEqual(INVALID_JSON);
    });

    it('answers 422 with field messages when the body is missing', async () => {
      const fields = expectValidation(await api.post('/v1/participants', undefined, { auth: program.secret }));
      expect(Object.keys(fields).length).toBeGreaterThan(0);
    });

    it('accepts a body of exactly 64 KiB', async () => {
      const externalId = uniq('big-');
      const json = JSON.stringify({ externalId });
      const raw = json + ' '.repeat(BODY_LIMIT - Buffer.byteLength(json));
      expect(Buffer.byteLength(raw)).toBe(BODY_LIMIT);
      const reply = await api.post('/v1/participants', undefined, {
        auth: program.secret,
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(reply.status, reply.text).toBe(201);
      expect(reply.body.externalId).toBe(externalId);
    });

    it('answers 413 to a body over 64 KiB (with Content-Length)', async () => {
      const externalId = uniq('huge-');
      const json = JSON.stringify({ externalId });
      const raw = json + ' '.repeat(BODY_LIMIT + 1 - Buffer.byteLength(json));
      const reply = await api.post('/v1/participants', undefined, {
        auth: program.secret,
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(reply.status).toBe(413);
      expect(reply.body).toEqual(TOO_LARGE);
      expect((await api.get(`/v1/participants/${externalId}`, { auth: program.secret })).status).toBe(404);
    });

    it('answers 413 to a chunked body over 64 KiB', async () => {
      const externalId = uniq('chunked-');
      const chunks = [`{"externalId":"${externalId}","name":"`, ...Array.from({ length: 9 }, () => 'n'.repeat(8 * 1024)), '"}'];
      const reply = await postChunked(api.url, '/v1/participants', chunks, program.secret);
      expect(reply.status).toBe(413);
      expect(reply.body).toEqual(TOO_LARGE);
      expect((await api.get(`/v1/participants/${externalId}`, { auth: program.secret })).status).toBe(404);
    });

    it('answers an unknown route with the JSON error shape', async () => {
      const reply = await api.get('/v1/no-such-thing');
      expect(reply.status).toBe(404);
      expect(reply.headers.get('content-type')).toContain('application/json');
      expect(reply.body).toEqual({ error: { code: 'not_found', message: 'No route for GET /v1/no-such-thing' } });
    });
  });

  describe('GET /v1/openapi.json', () => {
    it('is an OpenAPI 3.1.0 document with every foundation path, served without a key', async () => {
      const reply = await api.get('/v1/openapi.json');
      expect(reply.status).toBe(200);
      const doc = reply.body;
      expect(doc.openapi).toBe('3.1.0');
      expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
      expect(doc.servers).toEqual([{ url: api.url }]);
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/v1/health',
          '/v1/ready',
          '/v1/programs',
          '/v1/program',
          '/v1/participants',
          '/v1/participants/{externalId}',
          '/v1/openapi.json',
        ]),
      );
      expect(Object.keys(doc.paths['/v1/program'])).toEqual(expect.arrayContaining(['get', 'patch']));
      expect(doc.paths['/v1/participants/{externalId}'].get.parameters).toEqual([
        { name: 'externalId', in: 'path', required: true, schema: { type: 'string' } },
      ]);
    });

    it('derives the request schemas from the zod schemas', async () => {
      const doc = (await api.get('/v1/openapi.json')).body;
      const participant = doc.paths['/v1/participants'].post.requestBody.content['application/json'].schema;
      expect(participant.type).toBe('object');
      expect(participant.required).toEqual(['externalId']);
      expect(participant.properties.externalId).toMatchObject({ type: 'string', minLength: 1, maxLength: 255 });
      expect(participant.properties.code.pattern).toBe('^[A-Za-z0-9_-]{3,32}$');

      const program = doc.paths['/v1/programs'].post.requestBody.content['application/json'].schema;
      expect(program.required).toEqual(expect.arrayContaining(['name', 'origins', 'landingUrl']));
      expect(doc.paths['/v1/programs'].post.responses['201']).toBeDefined();
      expect(doc.paths['/v1/program'].patch.requestBody).toBeDefined();

      const { schemas, securitySchemes } = doc.components;
      expect(Object.keys(securitySchemes)).toEqual(expect.arrayContaining(['adminToken', 'secretKey']));
      expect(doc.paths['/v1/programs'].post.security).toEqual([{ adminToken: [] }]);
      expect(doc.paths['/v1/program'].get.security).toEqual([{ secretKey: [] }]);
      expect(schemas.Error.properties.error.required).toEqual(expect.arrayContaining(['code', 'message']));
      expect(schemas.ProgramSettings.properties.cookieDays).toMatchObject({ type: 'integer', minimum: 1, default: 60 });
      expect(schemas.RewardRule.properties.on.enum).toEqual(['signup', 'purchase']);
    });
  });
});

describe('an unreachable PostgreSQL', () => {
  it('answers 503 unavailable on a keyed route, without internals', async () => {
    const db = createDb({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere', poolMax: 1 });
    const api = await startTestApp(db);
    try {
      const reply = await api.get('/v1/program', { auth: `sk_${'B'.repeat(32)}` });
      expect(reply.status).toBe(503);
      expect(reply.body).toEqual({ error: { code: 'unavailable', message: 'The database is unavailable; retry shortly' } });
      expect(reply.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|stack/);
    } finally {
      await api.close();
      await db.destroy();
    }
  });
});
