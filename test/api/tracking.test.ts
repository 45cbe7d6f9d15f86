/**
 * Tracking through the real app, on every database: browser clicks (publishable key
 * in the body, JSON or text/plain), CORS for the program's own origins, the redirect
 * link `/r/:code` (never an open redirect), click deduplication and IP hashing.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, newVid, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { clickDetails, countRows } from '../helpers/rows.ts';
import { decisions, participant, sendClick } from '../helpers/steps.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';

const ORIGIN = 'https://shop.example';
const OTHER_ORIGIN = 'https://other.example';
/** A landing URL with its own query, which the redirect must keep. */
const LANDING = 'https://shop.example/welcome?utm_source=referral&lang=en';
const OTHER_LANDING = 'https://other.example/start';

type Participant = Awaited<ReturnType<typeof buildParticipant>>;

interface RawReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A GET with an exact request path and any headers (fetch normalizes paths and forbids Host). */
function rawGet(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<RawReply> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.each(DATABASES)('tracking (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let startApp: Suite['startApp'];
  let program: ProgramFixture;
  let other: ProgramFixture;

  useTestApp(kind, (suite) => ({ db, api, startApp } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, { origins: [ORIGIN, 'https://www.shop.example'], landingUrl: LANDING });
    other = await buildProgram(api, { origins: [OTHER_ORIGIN], landingUrl: OTHER_LANDING });
  });

  const clickRows = (participant: Participant) => clickDetails(db).where('c.code', participant.code);
  const clickIpHash = async (visitor: string) => ((await clickDetails(db).where('k.vid', visitor).first()) as { ip_hash: string }).ip_hash;

  describe('POST /v1/clicks', () => {
    it('records a click and answers 202 { valid: true }', async () => {
      const referrer = await buildParticipant(api, program);
      const visitor = newVid();
      const reply = await sendClick(
        api,
        program,
        { code: referrer.code, vid: visitor, url: 'https://shop.example/pricing?ref=x', referrer: 'https://blog.example/post' },
        { headers: { 'user-agent': 'TestBrowser/1.0' } },
      );
      expect(reply.status, reply.text).toBe(202);
      expect(reply.body).toEqual({ valid: true });
      const rows = await clickRows(referrer);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        program_id: program.id,
        participant_id: referrer.id,
        vid: visitor,
        url: 'https://shop.example/pricing?ref=x',
        referrer: 'https://blog.example/post',
        user_agent: 'TestBrowser/1.0',
      });
      expect(rows[0]?.ip_hash).toEqual(expect.any(String));
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(1);
    });

    it('accepts a text/plain body holding JSON (sendBeacon)', async () => {
      const referrer = await buildParticipant(api, program);
      const visitor = newVid();
      const reply = await api.post('/v1/clicks', undefined, {
        raw: JSON.stringify({ key: program.publishable, code: referrer.code, vid: visitor }),
        headers: { 'content-type': 'text/plain;charset=UTF-8', origin: ORIGIN },
      });
      expect(reply.status, reply.text).toBe(202);
      expect(reply.body).toEqual({ valid: true });
      expect(reply.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      const rows = await clickRows(referrer);
      expect(rows.map((row) => row.vid)).toEqual([visitor]);
    });

    it('finds the code whatever its case', async () => {
      const referrer = await buildParticipant(api, program);
      const reply = await sendClick(api, program, { code: referrer.code.toLowerCase(), vid: newVid() });
      expect(reply.body).toEqual({ valid: true });
      expect(await clickRows(referrer)).toHaveLength(1);
    });

    it('answers { valid: false } to an unknown code, explains it as unknown_code and stores no click', async () => {
      const before = await countRows(db, 'clicks');
      const code = `NOPE${uniq()}`.toUpperCase();
      const reply = await sendClick(api, program, { code, vid: newVid() });
      expect(reply.status, reply.text).toBe(202);
      expect(reply.body).toEqual({ valid: false });
      expect(await countRows(db, 'clicks')).toBe(before);
      const found = await decisions(api, program, 'reason=unknown_code');
      expect(found.filter((d) => d.code === code)).toEqual([
        expect.objectContaining({ subject: 'click', outcome: 'rejected', reason: 'unknown_code', code }),
      ]);
      expect(found.every((d) => d.reason === 'unknown_code')).toBe(true);
    });

    it("treats another program's code as unknown, and explains that only to this program", async () => {
      const foreign = await buildParticipant(api, other);
      const before = await countRows(db, 'clicks');
      const reply = await sendClick(api, program, { code: foreign.code, vid: newVid() });
      expect(reply.body).toEqual({ valid: false });
      expect(await countRows(db, 'clicks')).toBe(before);
      expect((await decisions(api, program, 'reason=unknown_code')).some((d) => d.code === foreign.code)).toBe(true);
      expect((await decisions(api, other, 'reason=unknown_code')).some((d) => d.code === foreign.code)).toBe(false);
      expect((await participant(api, other, foreign.externalId)).stats.clicks).toBe(0);
    });

    it('answers { valid: false } to a disabled code, explains it as code_disabled and stores no click', async () => {
      const referrer = await buildParticipant(api, program);
      await db('codes').where({ code: referrer.code }).update({ disabled_at: new Date() });
      const reply = await sendClick(api, program, { code: referrer.code, vid: newVid() });
      expect(reply.status).toBe(202);
      expect(reply.body).toEqual({ valid: false });
      expect(await clickRows(referrer)).toHaveLength(0);
      const found = await decisions(api, program, 'reason=code_disabled');
      expect(found.filter((d) => d.code === referrer.code)).toEqual([
        expect.objectContaining({ subject: 'click', outcome: 'rejected', reason: 'code_disabled' }),
      ]);
      expect(await decisions(api, program, 'reason=unknown_code')).not.toContainEqual(expect.objectContaining({ code: referrer.code }));
    });

    it('stores the same visitor clicking the same code within an hour once', async () => {
      const referrer = await buildParticipant(api, program);
      const visitor = newVid();
      for (let i = 0; i < 3; i++)
        expect((await sendClick(api, program, { code: referrer.code, vid: visitor })).body).toEqual({ valid: true });
      expect(await clickRows(referrer)).toHaveLength(1);
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(1);

      // Another visitor counts.
      await sendClick(api, program, { code: referrer.code, vid: newVid() });
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(2);

      // After the hour, the first visitor counts again.
      await db('clicks')
        .where({ vid: visitor })
        .update({ created_at: new Date(Date.now() - 61 * 60_000) });
      await sendClick(api, program, { code: referrer.code, vid: visitor });
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(3);
      await sendClick(api, program, { code: referrer.code, vid: visitor });
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(3);
    });

    it('counts one visitor clicking two different codes twice', async () => {
      const first = await buildParticipant(api, program);
      const second = await buildParticipant(api, program);
      const visitor = newVid();
      await sendClick(api, program, { code: first.code, vid: visitor });
      await sendClick(api, program, { code: second.code, vid: visitor });
      expect((await participant(api, program, first.externalId)).stats.clicks).toBe(1);
      expect((await participant(api, program, second.externalId)).stats.clicks).toBe(1);
    });

    it('never answers 500 to a NUL byte in the code, url or referrer', async () => {
      const referrer = await buildParticipant(api, program);
      const bodies = [
        { code: `${referrer.code}\u0000`, vid: newVid() },
        { code: '\u0000', vid: newVid() },
        { code: referrer.code, vid: newVid(), url: 'https://shop.example/\u0000' },
        { code: referrer.code, vid: newVid(), referrer: '\u0000' },
      ];
      for (const body of bodies) {
        const reply = await sendClick(api, program, body);
        expect(reply.status, `${JSON.stringify(body)}: ${reply.text}`).toBeLessThan(500);
        if (reply.status === 202 && body.code !== referrer.code) expect(reply.body).toEqual({ valid: false });
      }
    });

    it('answers 401 to an unknown key or a secret key in the body, and 422 to a bad body', async () => {
      const referrer = await buildParticipant(api, program);
      const before = await countRows(db, 'clicks');
      for (const key of ['pk_unknown0000000000000000', program.secret]) {
        const reply = await api.post('/v1/clicks', { key, code: referrer.code, vid: newVid() });
        expect(reply.status, reply.text).toBe(401);
        expect(reply.body.error.code).toBe('unauthorized');
      }
      const bad = await sendClick(api, program, { code: referrer.code, vid: 'short' });
      expect(bad.status).toBe(422);
      expect(bad.body.error.fields).toHaveProperty('vid');
      const noCode = await sendClick(api, program, { vid: newVid() });
      expect(noCode.status).toBe(422);
      expect(await countRows(db, 'clicks')).toBe(before);
    });
  });

  describe('CORS', () => {
    it('refuses a foreign Origin with 403 origin_not_allowed and stores nothing', async () => {
      const referrer = await buildParticipant(api, program);
      for (const origin of ['https://evil.example', OTHER_ORIGIN, 'http://shop.example', 'https://shop.example.evil.example', 'null']) {
        const reply = await sendClick(api, program, { code: referrer.code, vid: newVid() }, { headers: { origin } });
        expect(reply.status, origin).toBe(403);
        expect(reply.body.error.code).toBe('origin_not_allowed');
        expect(reply.headers.get('access-control-allow-origin')).toBeNull();
      }
      expect(await clickRows(referrer)).toHaveLength(0);
    });

    it("answers the program's own origins with Access-Control-Allow-Origin", async () => {
      const referrer = await buildParticipant(api, program);
      for (const origin of [ORIGIN, 'https://www.shop.example']) {
        const reply = await sendClick(api, program, { code: referrer.code, vid: newVid() }, { headers: { origin } });
        expect(reply.status, reply.text).toBe(202);
        expect(reply.headers.get('access-control-allow-origin')).toBe(origin);
        expect(reply.headers.get('vary') ?? '').toMatch(/origin/i);
      }
      expect(await clickRows(referrer)).toHaveLength(2);
    });

    it('lets requests without an Origin through, without CORS headers', async () => {
      const referrer = await buildParticipant(api, program);
      const reply = await sendClick(api, program, { code: referrer.code, vid: newVid() });
      expect(reply.status).toBe(202);
      expect(reply.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('refuses a foreign Origin on POST /v1/events too, recording no conversion', async () => {
      const referrer = await buildParticipant(api, program);
      const user = uniq('user-');
      const reply = await api.post(
        '/v1/events',
        { key: program.publishable, type: 'signup', eventId: uniq('evt-'), vid: newVid(), code: referrer.code, user: { id: user } },
        { headers: { origin: 'https://evil.example' } },
      );
      expect(reply.status).toBe(403);
      expect(reply.body.error.code).toBe('origin_not_allowed');
      expect(await db('participants').where({ program_id: program.id, external_id: user }).first()).toBeUndefined();
      const allowed = await api.post(
        '/v1/events',
        { key: program.publishable, type: 'signup', eventId: uniq('evt-'), vid: newVid(), code: referrer.code, user: { id: user } },
        { headers: { origin: ORIGIN } },
      );
      expect(allowed.status, allowed.text).toBe(202);
      expect(allowed.body).toEqual({ accepted: true });
      expect(allowed.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    });

    it('answers a preflight with CORS headers only for an origin that some program lists', async () => {
      for (const path of ['/v1/clicks', '/v1/events']) {
        for (const origin of [ORIGIN, OTHER_ORIGIN]) {
          const reply = await api.request('OPTIONS', path, undefined, {
            headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
          });
          expect(reply.status, `${path} ${origin}`).toBe(204);
          expect(reply.headers.get('access-control-allow-origin')).toBe(origin);
          expect(reply.headers.get('access-control-allow-methods') ?? '').toMatch(/POST/);
          expect((reply.headers.get('access-control-allow-headers') ?? '').toLowerCase()).toContain('content-type');
        }
        for (const origin of ['https://evil.example', 'https://shop.example.evil.example', 'null']) {
          const reply = await api.request('OPTIONS', path, undefined, { headers: { origin, 'access-control-request-method': 'POST' } });
          expect(reply.status).toBeLessThan(300);
          expect(reply.headers.get('access-control-allow-origin'), origin).toBeNull();
          expect(reply.headers.get('access-control-allow-methods')).toBeNull();
        }
      }
    });
  });

  describe('GET /r/:code', () => {
    const expectedLocation = (code: string) => `${LANDING}&ref=${code}`;

    it("records the click and 302s to the program's landing URL with ?ref=CODE, keeping its query", async () => {
      const referrer = await buildParticipant(api, program);
      const reply = await rawGet(api.url, `/r/${referrer.code}`, { referer: 'https://blog.example/post', 'user-agent': 'Linker/2' });
      expect(reply.status).toBe(302);
      expect(reply.headers.location).toBe(expectedLocation(referrer.code));
      const location = new URL(reply.headers.location ?? '');
      expect(location.searchParams.get('utm_source')).toBe('referral');
      expect(location.searchParams.get('lang')).toBe('en');
      expect(location.searchParams.get('ref')).toBe(referrer.code);
      expect(reply.headers['cache-control']).toBe('no-store');
      const rows = await clickRows(referrer);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        participant_id: referrer.id,
        vid: null,
        referrer: 'https://blog.example/post',
        user_agent: 'Linker/2',
      });
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(1);
    });

    it('adds ref to a landing URL without a query, and follows the landing URL of the code’s own program', async () => {
      const mine = await buildParticipant(api, program);
      const theirs = await buildParticipant(api, other);
      expect((await rawGet(api.url, `/r/${theirs.code}`)).headers.location).toBe(`${OTHER_LANDING}?ref=${theirs.code}`);
      expect((await rawGet(api.url, `/r/${mine.code}`)).headers.location).toBe(expectedLocation(mine.code));
    });

    it('answers the code in any case with the code as stored', async () => {
      const referrer = await buildParticipant(api, program, { code: `Vanity_${uniq()}` });
      const reply = await rawGet(api.url, `/r/${referrer.code.toUpperCase()}`);
      expect(reply.status).toBe(302);
      expect(reply.headers.location).toBe(expectedLocation(referrer.code));
    });

    it('answers an unknown code with a 404 page and a disabled one with the landing URL without ref, recording no click', async () => {
      const referrer = await buildParticipant(api, program);
      await db('codes').where({ code: referrer.code }).update({ disabled_at: new Date() });
      const before = await countRows(db, 'clicks');
      const disabled = await api.get(`/r/${referrer.code}`);
      expect(disabled.status).toBe(302);
      expect(disabled.headers.get('location')).toBe(LANDING);
      const unknown = await api.get(`/r/NOSUCH${uniq()}`);
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get('location')).toBeNull();
      expect(unknown.text).toContain('This referral link is not valid');
      expect(await countRows(db, 'clicks')).toBe(before);
    });

    it('stores a repeated redirect from the same address within the hour once, and lets the snippet claim it', async () => {
      const referrer = await buildParticipant(api, program);
      await rawGet(api.url, `/r/${referrer.code}`);
      await rawGet(api.url, `/r/${referrer.code}`);
      expect((await participant(api, program, referrer.externalId)).stats.clicks).toBe(1);
      // The landing page's snippet reports the same click with its visitor id.
      const visitor = newVid();
      await sendClick(api, program, { code: referrer.code, vid: visitor, url: `${LANDING}&ref=${referrer.code}` });
      const rows = await clickRows(referrer);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.vid).toBe(visitor);
    });

    it('never redirects anywhere else, whatever the request carries', async () => {
      const referrer = await buildParticipant(api, program);
      const code = referrer.code;
      const expected = expectedLocation(code);
      const evil = 'evil.example';
      const sameCode = [
        `/r/${code}?url=https://${evil}`,
        `/r/${code}?redirect=https%3A%2F%2F${evil}`,
        `/r/${code}?next=//${evil}&return_to=https://${evil}&landingUrl=https://${evil}`,
        `/r/${code}?ref=OTHER&to=javascript:alert(1)`,
        `/r/${code.toLowerCase()}?url=//${evil}`,
        `/r/${encodeURIComponent(code)}#https://${evil}`,
        `/r/%${code.charCodeAt(0).toString(16)}${code.slice(1)}`,
      ];
      for (const path of sameCode) {
        const reply = await rawGet(api.url, path);
        expect(reply.status, path).toBe(302);
        expect(reply.headers.location, path).toBe(expected);
      }
      const headerAttacks: Array<Record<string, string>> = [
        { host: evil },
        { 'x-forwarded-host': evil, 'x-forwarded-proto': 'https' },
        { referer: `https://${evil}/` },
        { origin: `https://${evil}` },
      ];
      for (const headers of headerAttacks) {
        const reply = await rawGet(api.url, `/r/${code}`, headers);
        expect(reply.status, JSON.stringify(headers)).toBe(302);
        expect(reply.headers.location).toBe(expected);
      }
      const elsewhere = [
        `//${evil}`,
        `//${evil}/r/${code}`,
        `/r//${evil}`,
        `/r/%2F%2F${evil}`,
        `/r/https%3A%2F%2F${evil}`,
        `/r/https:%2F%2F${evil}`,
        `/r/%5C%5C${evil}`,
        `/r/${code}%2F%2F${evil}`,
        `/r/${code}%2F..%2F..%2F${evil}`,
        `/r/${code}/..%2F..%2F${evil}`,
        `/r/${code}/https://${evil}`,
        `/r/${code}@${evil}`,
        `/r/${code}%3Furl%3Dhttps%3A%2F%2F${evil}`,
        `/r/${code}%0d%0aLocation:%20https://${evil}`,
        `/r/%E0%A4%A`,
        `/r/${'A'.repeat(65)}`,
        `/r/`,
        `/r`,
      ];
      for (const path of elsewhere) {
        const reply = await rawGet(api.url, path);
        expect(reply.status, path).toBeGreaterThanOrEqual(400);
        expect(reply.status, path).toBeLessThan(500);
        expect(reply.headers.location, path).toBeUndefined();
      }
    });

    it('only ever answers 302 to the landing URL or a 4xx, for any path segment and query (property)', async () => {
      const referrer = await buildParticipant(api, program);
      const piece = fc.oneof(
        fc.constantFrom(
          referrer.code,
          referrer.code.toLowerCase(),
          '/',
          '//',
          '%2F',
          '%2f%2f',
          '\\',
          '%5C',
          '..',
          '%2E%2E',
          '@',
          ':',
          '?',
          '#',
          'evil.example',
          'https:',
          'http%3A',
          'javascript:',
        ),
        fc.string({ maxLength: 6 }),
      );
      // (A NUL byte, %00, is covered by its own test below.)
      await fc.assert(
        fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 5 }), fc.array(piece, { maxLength: 3 }), async (segment, query) => {
          const path = `/r/${segment.map((p) => (/^[\x21-\x7e]*$/.test(p) && !/[?#]/.test(p) ? p : encodeURIComponent(p))).join('')}${
            query.length ? `?${query.map((p, i) => `${['url', 'redirect', 'next'][i % 3]}=${encodeURIComponent(p)}`).join('&')}` : ''
          }`;
          const reply = await rawGet(api.url, path);
          if (reply.status === 302) {
            expect(reply.headers.location, path).toBe(expectedLocation(referrer.code));
          } else {
            expect([400, 404], path).toContain(reply.status);
            expect(reply.headers.location, path).toBeUndefined();
          }
        }),
        { numRuns: 80 },
      );
    });

    it('answers a code holding a NUL byte with 404, not a 500', async () => {
      const referrer = await buildParticipant(api, program);
      for (const path of [`/r/%00${referrer.code}`, `/r/${referrer.code}%00`, '/r/%00']) {
        const reply = await rawGet(api.url, path);
        expect(reply.status, `${path}: ${reply.body}`).toBe(404);
        expect(reply.headers.location).toBeUndefined();
      }
    });

    it('follows a landing URL changed with PATCH /v1/program, never anything in the request', async () => {
      const fixture = await buildProgram(api, { origins: ['https://moving.example'], landingUrl: 'https://moving.example/a' });
      const referrer = await buildParticipant(api, fixture);
      expect((await rawGet(api.url, `/r/${referrer.code}`)).headers.location).toBe(`https://moving.example/a?ref=${referrer.code}`);
      const patched = await api.patch(
        '/v1/program',
        { settings: { landingUrl: 'https://moving.example/b?x=1' } },
        { auth: fixture.secret },
      );
      expect(patched.status, patched.text).toBe(200);
      expect((await rawGet(api.url, `/r/${referrer.code}?landingUrl=https://evil.example`)).headers.location).toBe(
        `https://moving.example/b?x=1&ref=${referrer.code}`,
      );
    });
  });

  describe('IP addresses', () => {
    const LOOPBACK = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];
    const plainDigests = (ip: string) =>
      ['sha256', 'sha1', 'md5'].flatMap((algorithm) =>
        (['hex', 'base64', 'base64url'] as const).map((encoding) => createHash(algorithm).update(ip).digest(encoding)),
      );

    it('stores only a keyed hash of the address: never the address, never a plain digest of it', async () => {
      const referrer = await buildParticipant(api, program);
      await sendClick(api, program, { code: referrer.code, vid: newVid() });
      await rawGet(api.url, `/r/${referrer.code}`);
      await api.post('/v1/events', {
        key: program.publishable,
        type: 'signup',
        eventId: uniq('evt-'),
        vid: newVid(),
        code: referrer.code,
        user: { id: uniq('u-') },
      });

      const tables = ['clicks', 'conversions', 'referrals'];
      for (const table of tables) {
        const rows = (await (table === 'clicks'
          ? clicksOf(db, program.id).select('k.*')
          : db(table).where({ program_id: program.id })
        ).whereNotNull('ip_hash')) as Array<Record<string, unknown>>;
        expect(rows.length, table).toBeGreaterThan(0);
        for (const row of rows) {
          // Clicks keep 16 bytes (see ipKeySql), the other tables the text hash.
          const hash = Buffer.isBuffer(row.ip_hash) ? row.ip_hash.toString('hex') : String(row.ip_hash);
          for (const ip of LOOPBACK) {
            expect(hash).not.toContain(ip);
            expect(plainDigests(ip).some((digest) => digest.startsWith(hash) || hash.startsWith(digest.slice(0, 16)))).toBe(false);
          }
          // No column anywhere in the row holds the address.
          expect(JSON.stringify(row)).not.toMatch(/127\.0\.0\.1|::1\b/);
        }
      }
      const all = (await clickDetails(db)) as Array<{ ip_hash: string | null }>;
      for (const { ip_hash } of all) {
        expect(ip_hash).not.toBe('127.0.0.1');
        expect(ip_hash ?? '').not.toContain('127.0.0.1');
      }
      // One address, one hash.
      const hashes = new Set((await clickRows(referrer)).map((row) => row.ip_hash));
      expect(hashes.size).toBe(1);
    });

    it('keys the hash with IP_HASH_SECRET: another secret gives another hash, the same secret the same', async () => {
      const referrer = await buildParticipant(api, program);
      const hashWith = async (secret: string) => {
        const app = await startApp({ IP_HASH_SECRET: secret });
        const visitor = newVid();
        expect((await app.post('/v1/clicks', { key: program.publishable, code: referrer.code, vid: visitor })).status).toBe(202);
        return clickIpHash(visitor);
      };
      const a = await hashWith('first-secret-0123456789');
      const b = await hashWith('second-secret-0123456789');
      const a2 = await hashWith('first-secret-0123456789');
      expect(a).not.toBe(b);
      expect(a2).toBe(a);
    });

    it('generates one secret, kept in the database, when IP_HASH_SECRET is unset: instances hash alike', async () => {
      const referrer = await buildParticipant(api, program);
      const hashes: string[] = [];
      for (let i = 0; i < 2; i++) {
        const app = await startApp({ IP_HASH_SECRET: '' });
        const visitor = newVid();
        expect((await app.post('/v1/clicks', { key: program.publishable, code: referrer.code, vid: visitor })).status).toBe(202);
        hashes.push(await clickIpHash(visitor));
      }
      expect(hashes[0]).toEqual(expect.any(String));
      expect(hashes[1]).toBe(hashes[0]);
      expect(hashes[0]).not.toContain('127.0.0.1');
      const secret = (await db('server_secrets').where({ name: 'ip_hash' }).first()) as { value: string } | undefined;
      expect(secret?.value.length).toBeGreaterThanOrEqual(32);
    });

    it('ignores X-Forwarded-For unless TRUST_PROXY is set', async () => {
      const referrer = await buildParticipant(api, program);
      const hashFor = async (app: TestApp, forwardedFor: string) => {
        const visitor = newVid();
        const reply = await app.post(
          '/v1/clicks',
          { key: program.publishable, code: referrer.code, vid: visitor },
          { headers: { 'x-forwarded-for': forwardedFor } },
        );
        expect(reply.status, reply.text).toBe(202);
        return clickIpHash(visitor);
      };
      const direct = [await hashFor(api, '203.0.113.7'), await hashFor(api, '198.51.100.9')];
      expect(direct[1]).toBe(direct[0]);

      const proxied = await startApp({ TRUST_PROXY: 'true' });
      const behind = [await hashFor(proxied, '203.0.113.7'), await hashFor(proxied, '198.51.100.9'), await hashFor(proxied, '203.0.113.7')];
      expect(behind[0]).not.toBe(behind[1]);
      expect(behind[2]).toBe(behind[0]);
      expect(behind).not.toContain(direct[0]);
      for (const hash of behind) {
        expect(hash).not.toContain('203.0.113.7');
        expect(hash).not.toContain('198.51.100.9');
      }
      const stored = JSON.stringify(await clicksOf(db, program.id).select('k.*'));
      expect(stored).not.toContain('203.0.113.7');
      expect(stored).not.toContain('198.51.100.9');
    });
  });
});
