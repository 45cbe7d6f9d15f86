/**
 * API keys, on every database: creating keys (shown once), listing them (prefixes
 * only), rotating a secret key without downtime, revoking (the revoked key answers
 * 401 at once; the last live secret key cannot be revoked), near-miss keys refused,
 * and keys never written to the logs of the real server process.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiKeyCreateResponse, ApiKeyResponse, ProgramCreateResponse } from '../../shared/responses.ts';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { processDatabase, startCollector, stopAll } from '../helpers/processes.ts';
import { useTestApp } from '../helpers/suite.ts';
import { newVid, buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';

const SECRET_KEY = /^sk_[A-Za-z0-9_-]{32}$/;
const PUBLISHABLE_KEY = /^pk_[A-Za-z0-9_-]{32}$/;

describe.each(DATABASES)('API keys (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  const listKeys = async (secret: string) => {
    const reply = await api.get('/v1/keys', { auth: secret });
    expect(reply.status, reply.text).toBe(200);
    return reply.body.data as ApiKeyResponse[];
  };
  const createKey = async (secret: string, keyKind: 'publishable' | 'secret') => {
    const reply = await api.post('/v1/keys', { kind: keyKind }, { auth: secret });
    expect(reply.status, reply.text).toBe(201);
    return reply.body as ApiKeyCreateResponse;
  };
  const revoke = (id: string, secret: string) => api.request('DELETE', `/v1/keys/${id}`, undefined, { auth: secret });
  const programOf = (secret: string) => api.get('/v1/program', { auth: secret });
  const idOf = async (program: ProgramFixture, key: string) => {
    const keys = await listKeys(program.secret);
    const found = keys.find((k) => key.startsWith(k.prefix) && k.revokedAt === null);
    expect(found, `no listed key for ${key.slice(0, 10)}`).toBeDefined();
    return (found as ApiKeyResponse).id;
  };

  describe('POST /v1/keys', () => {
    it('creates a secret key, shown once, that works at once; only its SHA-256 is stored', async () => {
      const program = await buildProgram(api);
      const created = await createKey(program.secret, 'secret');
      expect(created.secret).toMatch(SECRET_KEY);
      expect(created.key).toEqual({
        id: expect.any(String),
        kind: 'secret',
        prefix: created.secret.slice(0, 10),
        createdAt: expect.any(String),
        revokedAt: null,
      });
      expect(Date.parse(created.key.createdAt)).not.toBeNaN();
      expect(created.secret).not.toBe(program.secret);

      const reply = await programOf(created.secret);
      expect(reply.status).toBe(200);
      expect(reply.body.program.id).toBe(program.id);

      const row = (await db('api_keys').where({ id: created.key.id }).first()) as Record<string, unknown>;
      expect(row.hash).toBe(createHash('sha256').update(created.secret).digest('hex'));
      expect(JSON.stringify(row)).not.toContain(created.secret);
      expect(JSON.stringify(row)).not.toContain(created.secret.slice(10));
      // Shown once: no later answer carries it.
      const listed = await api.get('/v1/keys', { auth: created.secret });
      expect(listed.text).not.toContain(created.secret);
      expect(listed.text).not.toContain(created.secret.slice(10));
    });

    it('creates a publishable key for the browser endpoints, refused on the server API', async () => {
      const program = await buildProgram(api);
      const code = (await buildParticipant(api, program)).code;
      const created = await createKey(program.secret, 'publishable');
      expect(created.secret).toMatch(PUBLISHABLE_KEY);
      expect(created.key).toMatchObject({ kind: 'publishable', prefix: created.secret.slice(0, 10), revokedAt: null });
      const click = await api.post('/v1/clicks', { key: created.secret, code, vid: newVid() });
      expect(click.status, click.text).toBe(202);
      expect(click.body).toEqual({ valid: true });
      const refused = await programOf(created.secret);
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe('unauthorized');
    });

    it('gives every key its own random value', async () => {
      const program = await buildProgram(api);
      const secrets = new Set<string>([program.secret]);
      for (let i = 0; i < 5; i++) secrets.add((await createKey(program.secret, i % 2 ? 'publishable' : 'secret')).secret);
      expect(secrets.size).toBe(6);
    });

    it.each([
      ['an unknown kind', { kind: 'admin' }],
      ['no kind', {}],
      ['a kind of the wrong type', { kind: 1 }],
    ])('refuses %s with 422 and a field message', async (_label, body) => {
      const program = await buildProgram(api);
      const reply = await api.post('/v1/keys', body, { auth: program.secret });
      expect(reply.status, reply.text).toBe(422);
      expect(reply.body).toEqual({
        error: { code: 'validation_failed', message: expect.any(String), fields: { kind: expect.any(String) } },
      });
      expect(await listKeys(program.secret)).toHaveLength(2);
    });

    it('cannot be called with a publishable key or without a key', async () => {
      const program = await buildProgram(api);
      expect((await api.post('/v1/keys', { kind: 'secret' }, { auth: program.publishable })).status).toBe(401);
      expect((await api.post('/v1/keys', { kind: 'secret' })).status).toBe(401);
      expect(await listKeys(program.secret)).toHaveLength(2);
    });
  });

  describe('GET /v1/keys', () => {
    it("lists the program's keys, oldest first, by prefix only", async () => {
      const program = await buildProgram(api);
      const other = await buildProgram(api);
      const extra = await createKey(program.secret, 'secret');
      const reply = await api.get('/v1/keys', { auth: program.secret });
      expect(reply.status).toBe(200);
      const keys = reply.body.data as ApiKeyResponse[];
      expect(keys.map((k) => k.kind)).toEqual(['publishable', 'secret', 'secret']);
      const full = [program.publishable, program.secret, extra.secret];
      keys.forEach((key, index) => {
        expect(Object.keys(key).sort()).toEqual(['createdAt', 'id', 'kind', 'prefix', 'revokedAt']);
        expect(key.prefix).toHaveLength(10);
        expect(full[index]?.startsWith(key.prefix)).toBe(true);
      });
      for (const secret of [...full, other.secret, other.publishable]) {
        expect(reply.text).not.toContain(secret);
        expect(reply.text).not.toContain(secret.slice(10, 30));
      }
      expect(reply.text).not.toMatch(/[0-9a-f]{64}/); // no hash either
      const createdAt = keys.map((k) => Date.parse(k.createdAt));
      expect([...createdAt].sort((x, y) => x - y)).toEqual(createdAt);
    });
  });

  describe('rotation and revocation', () => {
    it('rotates a secret key without downtime: both work until the old one is revoked, which then answers 401 at once', async () => {
      const program = await buildProgram(api);
      const oldId = await idOf(program, program.secret);
      const fresh = await createKey(program.secret, 'secret');
      // Both live: clients move over at their own pace.
      for (const key of [program.secret, fresh.secret]) expect((await programOf(key)).status).toBe(200);

      const revoked = await revoke(oldId, fresh.secret);
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.body.key).toMatchObject({ id: oldId, kind: 'secret', revokedAt: expect.any(String) });
      expect(Date.parse(revoked.body.key.revokedAt)).not.toBeNaN();

      // At once, on every secret endpoint.
      for (const [method, route] of [
        ['GET', '/v1/program'],
        ['GET', '/v1/keys'],
        ['POST', '/v1/participants'],
        ['GET', '/v1/reports/summary'],
        ['DELETE', `/v1/keys/${fresh.key.id}`],
      ] as const) {
        const reply = await api.request(method, route, method === 'POST' ? { externalId: uniq() } : undefined, { auth: program.secret });
        expect(reply.status, `${method} ${route}`).toBe(401);
        expect(reply.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
      }
      expect((await programOf(fresh.secret)).status).toBe(200);
      const keys = await listKeys(fresh.secret);
      expect(keys.find((k) => k.id === oldId)?.revokedAt).toBe(revoked.body.key.revokedAt);
      expect(keys.find((k) => k.id === fresh.key.id)?.revokedAt).toBeNull();
    });

    it('a key may revoke itself while another secret key is live', async () => {
      const program = await buildProgram(api);
      const fresh = await createKey(program.secret, 'secret');
      const reply = await revoke(fresh.key.id, fresh.secret);
      expect(reply.status, reply.text).toBe(200);
      expect((await programOf(fresh.secret)).status).toBe(401);
      expect((await programOf(program.secret)).status).toBe(200);
    });

    it('refuses to revoke the last live secret key (409 last_secret_key); the key keeps working', async () => {
      const program = await buildProgram(api);
      const onlyId = await idOf(program, program.secret);
      const reply = await revoke(onlyId, program.secret);
      expect(reply.status, reply.text).toBe(409);
      expect(reply.body).toEqual({ error: { code: 'last_secret_key', message: expect.any(String) } });
      expect((await programOf(program.secret)).status).toBe(200);
      expect((await listKeys(program.secret)).every((k) => k.revokedAt === null)).toBe(true);

      // After a rotation, the new key is the last one: it cannot go either.
      const fresh = await createKey(program.secret, 'secret');
      expect((await revoke(onlyId, fresh.secret)).status).toBe(200);
      const last = await revoke(fresh.key.id, fresh.secret);
      expect(last.status).toBe(409);
      expect(last.body.error.code).toBe('last_secret_key');
      expect((await programOf(fresh.secret)).status).toBe(200);
    });

    it('revoking a revoked key is 409 key_revoked', async () => {
      const program = await buildProgram(api);
      const fresh = await createKey(program.secret, 'secret');
      expect((await revoke(fresh.key.id, program.secret)).status).toBe(200);
      const again = await revoke(fresh.key.id, program.secret);
      expect(again.status).toBe(409);
      expect(again.body).toEqual({ error: { code: 'key_revoked', message: expect.any(String) } });
    });

    it('rotates a publishable key: the revoked one is refused on the browser endpoints at once', async () => {
      const program = await buildProgram(api);
      const code = (await buildParticipant(api, program)).code;
      // Warm the browser-key cache with the old key first.
      expect((await api.post('/v1/clicks', { key: program.publishable, code, vid: newVid() })).status).toBe(202);
      const fresh = await createKey(program.secret, 'publishable');
      const oldId = await idOf(program, program.publishable);
      const reply = await revoke(oldId, program.secret);
      expect(reply.status, reply.text).toBe(200);
      for (const [route, body] of [
        ['/v1/clicks', { key: program.publishable, code, vid: newVid() }],
        ['/v1/events', { key: program.publishable, type: 'signup', eventId: uniq(), vid: newVid(), user: { id: uniq() } }],
      ] as const) {
        const refused = await api.post(route, body);
        expect(refused.status, `${route}: ${refused.text}`).toBe(401);
        expect(refused.body.error.code).toBe('unauthorized');
      }
      expect((await api.post('/v1/clicks', { key: fresh.secret, code, vid: newVid() })).body).toEqual({ valid: true });
    });

    it.each([
      ['an unknown id', () => '00000000-0000-4000-8000-000000000000'],
      ['an id that is not a uuid', () => 'not-a-uuid'],
      ['an id with SQL in it', () => encodeURIComponent("1' or '1'='1")],
    ])('DELETE with %s is 404', async (_label, id) => {
      const program = await buildProgram(api);
      const reply = await revoke(id(), program.secret);
      expect(reply.status, reply.text).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
      expect((await listKeys(program.secret)).every((k) => k.revokedAt === null)).toBe(true);
    });

    it("another program's key id is 404, and that key is left alone", async () => {
      const program = await buildProgram(api);
      const other = await buildProgram(api);
      await createKey(other.secret, 'secret'); // so that other's key could be revoked at all
      for (const key of await listKeys(other.secret)) {
        const reply = await revoke(key.id, program.secret);
        expect(reply.status).toBe(404);
      }
      expect((await listKeys(other.secret)).every((k) => k.revokedAt === null)).toBe(true);
      expect((await programOf(other.secret)).status).toBe(200);
    });

    it('two secret keys revoking each other at the same time never lock the program out', async () => {
      for (let round = 0; round < 4; round++) {
        const program = await buildProgram(api);
        const second = await createKey(program.secret, 'secret');
        const firstId = await idOf(program, program.secret);
        const [one, two] = await Promise.all([revoke(second.key.id, program.secret), revoke(firstId, second.secret)]);
        const statuses = [one.status, two.status].sort();
        // One wins; the other is the last key (409) or was already revoked when it authenticated (401).
        expect(
          statuses.filter((s) => s === 200),
          `round ${round}: ${one.text} ${two.text}`,
        ).toHaveLength(1);
        expect([401, 409]).toContain(statuses.find((s) => s !== 200));
        const live = (await db('api_keys')
          .where({ program_id: program.id, kind: 'secret' })
          .whereNull('revoked_at')
          .select('id')) as Array<{ id: string }>;
        expect(live).toHaveLength(1);
        const survivor = live[0]?.id === firstId ? program.secret : second.secret;
        expect((await programOf(survivor)).status).toBe(200);
      }
    });
  });

  describe('near-miss keys are refused (constant-time comparison of hashes)', () => {
    let program: ProgramFixture;
    beforeAll(async () => {
      program = await buildProgram(api);
    });

    const variants = (key: string) => [
      ['the last character changed', key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A')],
      ['one character missing', key.slice(0, -1)],
      ['one character extra', `${key}A`],
      ['the prefix only', key.slice(0, 10)],
      ['upper-cased', key.toUpperCase()],
      ['the right body with the other kind’s prefix', `${key.startsWith('sk_') ? 'pk_' : 'sk_'}${key.slice(3)}`],
      ['a very long key', `sk_${'A'.repeat(5000)}`],
      ['unicode', `sk_${'é'.repeat(32)}`],
      ['the admin token', ADMIN_TOKEN],
    ];

    it('on the server API', async () => {
      for (const [label, variant] of variants(program.secret)) {
        const reply = await programOf(variant as string);
        expect(reply.status, label).toBe(401);
        expect(reply.body.error.code).toBe('unauthorized');
      }
      expect((await programOf(program.secret)).status).toBe(200);
    });

    it('on the browser endpoints', async () => {
      const code = (await buildParticipant(api, program)).code;
      for (const [label, variant] of variants(program.publishable)) {
        const reply = await api.post('/v1/clicks', { key: variant, code, vid: newVid() });
        expect([401, 422], `${label}: ${reply.text}`).toContain(reply.status);
      }
      expect((await api.post('/v1/clicks', { key: program.publishable, code, vid: newVid() })).body).toEqual({ valid: true });
    });
  });
});

// ---------------------------------------------------------------------------------
// Keys never reach the logs of the real server process.
// ---------------------------------------------------------------------------------

const LOG_ADMIN_TOKEN = 'keys-log-admin-token-0123456789';

describe.each(DATABASES)('keys in the logs of the server process (%s)', (kind) => {
  let database: Awaited<ReturnType<typeof processDatabase>> | undefined;
  afterAll(async () => {
    await stopAll();
    await database?.drop();
  });

  it('never writes a key or the admin token to stdout or stderr, at the most verbose level', async () => {
    database = await processDatabase(kind, 'keys');
    const server = await startCollector({ ...database.env, ADMIN_TOKEN: LOG_ADMIN_TOKEN, LOG_LEVEL: 'trace', DEMO: 'off' });
    /** JSON bodies, raw ones sent as JSON too unless a header says otherwise. */
    const call = (
      method: string,
      route: string,
      options: { auth?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
    ) => {
      const { body, ...rest } = options;
      const headers = options.raw === undefined ? options.headers : { 'content-type': 'application/json', ...options.headers };
      return server.request(method, route, body, { ...rest, ...(headers ? { headers } : {}) });
    };

    const created = await call('POST', '/v1/programs', {
      auth: LOG_ADMIN_TOKEN,
      body: { name: 'Logs', origins: ['https://logs.example'], landingUrl: 'https://logs.example/' },
    });
    expect(created.status).toBe(201);
    const { publishable, secret } = (created.body as ProgramCreateResponse).keys;
    const participant = await call('POST', '/v1/participants', {
      auth: secret,
      body: { externalId: 'log-user' },
      headers: { 'idempotency-key': 'log-idem-1' },
    });
    expect(participant.status).toBe(201);
    const newSecret = await call('POST', '/v1/keys', { auth: secret, body: { kind: 'secret' } });
    const newPublishable = await call('POST', '/v1/keys', { auth: secret, body: { kind: 'publishable' } });
    expect([newSecret.status, newPublishable.status]).toEqual([201, 201]);
    const keys = [publishable, secret, newSecret.body.secret as string, newPublishable.body.secret as string];

    // Keys in headers, bodies (JSON and text/plain), query strings; answers 2xx, 4xx and (when a bug allows) 5xx.
    expect((await call('GET', '/v1/program', { auth: secret })).status).toBe(200);
    expect(
      (await call('GET', `/v1/program?key=${secret}&token=${encodeURIComponent(LOG_ADMIN_TOKEN)}`, { auth: newSecret.body.secret })).status,
    ).toBe(200);
    expect(
      (await call('POST', '/v1/clicks', { body: { key: publishable, code: participant.body.code, vid: 'vid_logs_0001' } })).status,
    ).toBe(202);
    expect(
      (
        await call('POST', '/v1/clicks', {
          raw: JSON.stringify({ key: newPublishable.body.secret, code: participant.body.code, vid: 'vid_logs_0002' }),
          headers: { 'content-type': 'text/plain' },
        })
      ).status,
    ).toBe(202);
    expect((await call('POST', '/v1/clicks', { body: { key: publishable, code: 'x', vid: 'short' } })).status).toBe(422);
    expect(
      (
        await call('POST', '/v1/events', {
          body: { key: `${publishable}x`, type: 'signup', eventId: 'e1', vid: 'vid_logs_0003', user: { id: 'u1' } },
        })
      ).status,
    ).toBe(401);
    expect((await call('GET', '/v1/program', { auth: publishable })).status).toBe(401);
    expect((await call('GET', '/v1/program', { auth: `${secret}x` })).status).toBe(401);
    expect((await call('POST', '/v1/programs', { auth: secret, body: {} })).status).toBe(401);
    await call('GET', `/v1/referrals?cursor=${Buffer.from(JSON.stringify(['2025-01-01', 'x'])).toString('base64url')}`, { auth: secret });
    await call('POST', '/v1/participants', {
      auth: secret,
      raw: '['.repeat(20_000) + ']'.repeat(20_000),
      headers: { 'idempotency-key': 'log-idem-2' },
    });
    await call('POST', '/v1/participants', { auth: secret, raw: '{"externalId": ', headers: { cookie: `session=${secret}` } });
    const listed = await call('GET', '/v1/keys', { auth: secret });
    const oldId = (listed.body.data as ApiKeyResponse[]).find((k) => secret.startsWith(k.prefix))?.id;
    expect((await call('DELETE', `/v1/keys/${oldId}`, { auth: newSecret.body.secret })).status).toBe(200);
    expect((await call('GET', '/v1/program', { auth: secret })).status).toBe(401);

    expect((await server.stop('SIGTERM')).code).toBe(0);

    // The logs were on (one line per request), and no key is in them, whole or without its prefix.
    const output = server.output();
    expect(output).toMatch(/"msg":"request"/);
    expect(output).toContain('"path":"/v1/keys"');
    for (const key of [...keys, LOG_ADMIN_TOKEN]) {
      expect(output.includes(key), `${key.slice(0, 6)}… is in the log`).toBe(false);
      expect(output.includes(key.slice(3)), `${key.slice(0, 6)}… (without its prefix) is in the log`).toBe(false);
    }
  }, 60_000);
});
