/**
 * A new user's first hour, on every database: the home page at `/`, referral links
 * that answer people (an HTML page for an unknown code, the landing page without
 * `?ref` for a disabled one), a clear answer to `POST /v1/keys` without a body, and
 * amounts that say "integer minor units" wherever one can go wrong.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../collector/src/demo.ts';
import { PAGE_CSP } from '../../collector/src/http/page.ts';
import { createLogger } from '../../collector/src/logger.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, newVid, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { countRows } from '../helpers/rows.ts';
import { decisions, expectLimited, expectValidation } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const MINOR_UNITS = 'integer minor units, e.g. 4900 = $49.00';
const LANDING = 'https://shop.example/welcome?utm_source=referral';

/** The local links of a page, in order. */
const hrefs = (html: string) => [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1] as string).filter((href) => href.startsWith('/'));

/** Checks a server-written page: HTML, the strict CSP, no script, and the inline style allowed by its hash. */
function expectStrictPage(reply: { headers: Headers; text: string }) {
  expect(reply.headers.get('content-type')).toBe('text/html; charset=utf-8');
  const csp = reply.headers.get('content-security-policy');
  expect(csp).toBe(PAGE_CSP);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toContain('script-src');
  expect(reply.headers.get('x-content-type-options')).toBe('nosniff');
  expect(reply.headers.get('x-frame-options')).toBe('DENY');
  expect(reply.headers.get('cache-control')).toBe('no-store');
  expect(reply.text).not.toMatch(/<script/i);
  expect(reply.text, 'no inline event handler').not.toMatch(/\son[a-z]+\s*=/i);
  expect(reply.text, 'no style attribute').not.toMatch(/\sstyle\s*=/i);
  const styles = [...reply.text.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] as string);
  expect(styles).toHaveLength(1);
  const hash = createHash('sha256')
    .update(styles[0] as string)
    .digest('base64');
  expect(csp, 'the CSP allows exactly the page’s own stylesheet').toContain(`style-src 'sha256-${hash}'`);
}

describe.each(DATABASES)('first hour (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let startApp: (env: Record<string, string>) => Promise<TestApp>;
  useTestApp(kind, (suite) => ({ db, api, startApp } = suite));

  describe('GET /', () => {
    it('without a demo program: a page that links the dashboard, the docs and health, and says how to get the demo', async () => {
      const reply = await api.get('/');
      expect(reply.status).toBe(200);
      expectStrictPage(reply);
      expect(reply.text).toContain('No demo program on this collector');
      expect(hrefs(reply.text)).toEqual(['/admin', '/v1/openapi.json', '/v1/health', '/v1/ready']);
      expect(reply.text).toContain('README.md');
    });

    it('with the demo: links the demo shop and its referral link too, and every link it gives answers', async () => {
      // Seeded first: seedDemo makes a demo only while the database has no program.
      const seed = await seedDemo(db, api.config, createLogger('silent'), { write: () => true });
      expect(seed, 'the suite’s database has no program yet').toBeDefined();
      const reply = await api.get('/');
      expect(reply.status).toBe(200);
      expectStrictPage(reply);
      expect(reply.text).not.toContain('No demo program');
      expect(hrefs(reply.text)).toEqual(['/demo/', '/r/DEMO', '/admin', '/v1/openapi.json', '/v1/health', '/v1/ready']);
      for (const href of hrefs(reply.text)) {
        const linked = await api.get(href);
        expect(linked.status, href).toBe(href === '/r/DEMO' ? 302 : 200);
      }
      expect((await api.get('/r/DEMO')).headers.get('location')).toBe(`${api.url}/demo/?ref=DEMO`);
      expect((await api.request('HEAD', '/')).status).toBe(200);
    });
  });

  describe('GET /r/:code', () => {
    let program: ProgramFixture;
    beforeAll(async () => {
      program = await buildProgram(api, { landingUrl: LANDING });
    });

    it('an unknown code: a 404 HTML page for the visitor, not JSON, not echoing the code, no redirect', async () => {
      const code = `NOSUCH${uniq()}`;
      const before = await countRows(db, 'clicks');
      const reply = await api.get(`/r/${code}`);
      expect(reply.status).toBe(404);
      expectStrictPage(reply);
      expect(reply.text).toContain('<title>This referral link is not valid</title>');
      expect(reply.text).toContain('<h1>This referral link is not valid</h1>');
      expect(reply.text).not.toContain(code);
      expect(() => JSON.parse(reply.text)).toThrow();
      expect(reply.headers.get('location')).toBeNull();
      expect(await countRows(db, 'clicks')).toBe(before);
      // A code the schema refuses (too long) is unknown the same way.
      const tooLong = await api.get(`/r/${'A'.repeat(65)}`);
      expect(tooLong.status).toBe(404);
      expect(tooLong.text).toContain('This referral link is not valid');
    });

    it('a disabled code: 302 to its program’s landing URL without ?ref, the rejected click recorded as a decision, no click stored', async () => {
      const referrer = await buildParticipant(api, program);
      await db('codes').where({ code: referrer.code }).update({ disabled_at: new Date() });
      const before = await countRows(db, 'clicks');
      const reply = await api.get(`/r/${referrer.code}`, { headers: { referer: 'https://blog.example/post' } });
      expect(reply.status).toBe(302);
      expect(reply.headers.get('location')).toBe(LANDING);
      expect(new URL(reply.headers.get('location') ?? '').searchParams.has('ref')).toBe(false);
      expect(reply.headers.get('cache-control')).toBe('no-store');
      expect(await countRows(db, 'clicks')).toBe(before);
      const found = (await decisions(api, program, 'reason=code_disabled')).filter((d) => d.code === referrer.code);
      expect(found).toEqual([
        expect.objectContaining({ subject: 'click', outcome: 'rejected', reason: 'code_disabled', code: referrer.code }),
      ]);
      // Another program's landing URL is never used: the code names its own program.
      const other = await buildProgram(api, { landingUrl: 'https://other.example/' });
      const theirs = await buildParticipant(api, other);
      await db('codes').where({ code: theirs.code }).update({ disabled_at: new Date() });
      expect((await api.get(`/r/${theirs.code}`)).headers.get('location')).toBe('https://other.example/');
    });

    it('unknown and disabled codes spend the IP’s budget (then 429, JSON like every rate limit); live links still lead to the site', async () => {
      const limited = await startApp({ RATE_LIMIT_UNKNOWN_CODES_PER_MINUTE: '2', TRUST_PROXY: 'true' });
      const from = { headers: { 'x-forwarded-for': '198.51.100.7' } };
      const live = await buildParticipant(limited, program);
      const disabled = await buildParticipant(limited, program);
      await db('codes').where({ code: disabled.code }).update({ disabled_at: new Date() });
      const unknown = await limited.get(`/r/NOPE${uniq()}`, from);
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get('content-type')).toMatch(/^text\/html/);
      expect((await limited.get(`/r/${disabled.code}`, from)).headers.get('location')).toBe(LANDING);
      expectLimited(await limited.get(`/r/NOPE${uniq()}`, from));
      expectLimited(await limited.get(`/r/${disabled.code}`, from));
      expect((await limited.get(`/r/${live.code}`, from)).headers.get('location')).toBe(`${LANDING}&ref=${live.code}`);
      // Another address has its own budget.
      expect((await limited.get(`/r/NOPE${uniq()}`, { headers: { 'x-forwarded-for': '198.51.100.8' } })).status).toBe(404);
    });
  });

  describe('POST /v1/keys', () => {
    let program: ProgramFixture;
    beforeAll(async () => {
      program = await buildProgram(api);
    });

    it('without a body names the missing field and the body to send', async () => {
      const fields = expectValidation(await api.post('/v1/keys', undefined, { auth: program.secret }));
      expect(fields).toEqual({ kind: 'required: send { "kind": "secret" } or { "kind": "publishable" }' });
      // An empty JSON body reads the same.
      expect(expectValidation(await api.post('/v1/keys', {}, { auth: program.secret }))).toEqual(fields);
    });

    it('with a wrong kind or a body that is not an object says what is expected', async () => {
      expect(expectValidation(await api.post('/v1/keys', { kind: 'admin' }, { auth: program.secret }))).toEqual({
        kind: 'must be "secret" or "publishable"',
      });
      expect(expectValidation(await api.post('/v1/keys', ['secret'], { auth: program.secret }))).toEqual({
        _: 'send a JSON object: { "kind": "secret" | "publishable" }',
      });
    });

    it('still creates a key with { kind }', async () => {
      const reply = await api.post('/v1/keys', { kind: 'publishable' }, { auth: program.secret });
      expect(reply.status).toBe(201);
      expect(reply.body.secret).toMatch(/^pk_/);
    });
  });

  describe('amounts are integer minor units', () => {
    let program: ProgramFixture;
    beforeAll(async () => {
      program = await buildProgram(api, { origins: ['https://shop.example'] });
    });

    const purchase = (amount: unknown) => ({
      type: 'purchase',
      eventId: uniq('p-'),
      externalId: uniq('u-'),
      amount,
      currency: 'USD',
    });

    it('a server purchase of 49.5 is refused with a message that says 4900 = $49.00', async () => {
      const fields = expectValidation(await api.post('/v1/conversions', purchase(49.5), { auth: program.secret }));
      expect(fields.amount).toBe(`must be an integer: amounts are ${MINOR_UNITS} (not 49.00)`);
    });

    it('an amount sent as a string ("49.00") is refused with the same explanation', async () => {
      const fields = expectValidation(await api.post('/v1/conversions', purchase('49.00'), { auth: program.secret }));
      expect(fields.amount).toBe(`must be a number in ${MINOR_UNITS}`);
    });

    it('a browser purchase and a refund say it too', async () => {
      const event = {
        key: program.publishable,
        type: 'purchase',
        eventId: uniq('e-'),
        vid: newVid(),
        user: { id: uniq('u-') },
        order: { id: uniq('o-'), amount: 49.99, currency: 'USD' },
      };
      const browser = await api.post('/v1/events', event, { headers: { origin: 'https://shop.example' } });
      expect(expectValidation(browser)['order.amount']).toContain(MINOR_UNITS);
      const refund = await api.post(
        '/v1/refunds',
        { eventId: uniq('r-'), purchaseEventId: uniq('p-'), amount: 0.5 },
        { auth: program.secret },
      );
      expect(expectValidation(refund).amount).toContain(MINOR_UNITS);
    });

    it('4900 is accepted as $49.00', async () => {
      const reply = await api.post('/v1/conversions', purchase(4900), { auth: program.secret });
      expect(reply.status, reply.text).toBe(200);
      expect(reply.body.conversion).toMatchObject({ amount: 4900, currency: 'USD' });
    });
  });

  describe('the OpenAPI document', () => {
    let doc: any;
    beforeAll(async () => {
      doc = (await api.get('/v1/openapi.json')).body;
    });
    const bodyOf = (path: string, method = 'post') => doc.paths[path][method].requestBody.content['application/json'].schema;

    it('describes every amount as integer minor units', () => {
      const amounts = [
        bodyOf('/v1/conversions').properties.amount,
        bodyOf('/v1/events').properties.order.properties.amount,
        bodyOf('/v1/refunds').properties.amount,
        doc.components.schemas.RewardRule.properties.reward.properties.amount,
        doc.components.schemas.RewardRule.properties.when.properties.minAmount,
      ];
      for (const amount of amounts) {
        expect(amount.type).toBe('integer');
        expect(amount.description).toContain(MINOR_UNITS);
      }
      expect(bodyOf('/v1/refunds').properties.amount.description).toContain('the whole purchase when absent');
    });

    it('documents the body of POST /v1/keys, the home page and what /r/{code} answers', () => {
      const keys = bodyOf('/v1/keys');
      expect(keys.required).toEqual(['kind']);
      expect(keys.properties.kind.enum).toEqual(['publishable', 'secret']);
      expect(keys.properties.kind.description).toContain('"secret"');
      expect(doc.paths['/v1/keys'].post.summary).toContain('{ "kind": "secret" | "publishable" }');
      expect(doc.paths['/'].get.summary).toMatch(/^Home page \(HTML\)/);
      expect(doc.paths['/r/{code}'].get.summary).toContain('a disabled code 302s there without ?ref; an unknown code is a 404 HTML page');
    });
  });
});
