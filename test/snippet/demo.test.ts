/**
 * The demo: seedDemo on an empty database, and the /demo/* pages with the
 * publishable key they need, served next to the real API.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../collector/src/app.ts';
import { loadConfig, type Config } from '../../collector/src/config.ts';
import { demoRoutes, seedDemo } from '../../collector/src/demo.ts';
import { createLogger } from '../../collector/src/logger.ts';
import { snippetRoutes } from '../../collector/src/routes/snippet.ts';
import { DATABASES, openTestDb, type TestDb } from '../helpers/databases.ts';

describe.each(DATABASES)('demo (%s)', (kind) => {
  let testDb: TestDb;
  let server: Server;
  let base: string;
  let config: Config;
  const logger = createLogger('silent');

  beforeAll(async () => {
    testDb = await openTestDb(kind);
    config = loadConfig({ LOG_LEVEL: 'silent', IP_HASH_SECRET: 'test-ip-hash-secret-0123456789' });
    const deps = { db: testDb.db, config, logger };
    const app = buildApp(deps);
    for (const router of [snippetRoutes(deps), demoRoutes(deps)]) app.use(router.routes());
    server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    config.publicUrl = base;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await testDb?.close();
  });
  afterEach(() => vi.restoreAllMocks());

  it('has no demo key before seeding', async () => {
    const response = await fetch(`${base}/demo/config.json`);
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe('not_found');
  });

  it('does nothing when DEMO=off', async () => {
    expect(await seedDemo(testDb.db, { ...config, demo: 'off' }, logger)).toBeUndefined();
    expect(Number((await testDb.db('programs').count({ n: '*' }))[0]?.n)).toBe(0);
  });

  it('seeds a program, a referrer with the code DEMO, and prints the links and keys', async () => {
    const printed = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const seed = await seedDemo(testDb.db, config, logger);
    expect(seed).toMatchObject({
      link: `${base}/r/DEMO`,
      landingUrl: `${base}/demo/`,
      dashboardUrl: `${base}/admin`,
      keys: { publishable: expect.stringMatching(/^pk_/), secret: expect.stringMatching(/^sk_/) },
    });
    const output = printed.mock.calls.map(([chunk]) => String(chunk)).join('');
    for (const text of [seed!.link, seed!.dashboardUrl, seed!.keys.publishable, seed!.keys.secret]) expect(output).toContain(text);

    const program = await testDb.db('programs').where({ id: seed!.programId }).first();
    expect(program.settings).toMatchObject({ origins: [base], landingUrl: `${base}/demo/` });
    const referrer = await testDb.db('participants').where({ program_id: seed!.programId, external_id: 'demo-referrer' }).first();
    const code = await testDb.db('codes').where({ participant_id: referrer.id }).first();
    expect(code.code).toBe('DEMO');
  });

  it('does nothing once a program exists', async () => {
    expect(await seedDemo(testDb.db, config, logger)).toBeUndefined();
    expect(Number((await testDb.db('programs').count({ n: '*' }))[0]?.n)).toBe(1);
  });

  it('serves the demo key, which the collector accepts from the demo origin', async () => {
    const { key } = await (await fetch(`${base}/demo/config.json`)).json();
    expect(key).toMatch(/^pk_/);
    const response = await fetch(`${base}/v1/clicks`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8', origin: base },
      body: JSON.stringify({ key, code: 'DEMO', vid: 'demo-visitor-1' }),
    });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ valid: true });
  });

  it('redirects /r/DEMO to the demo landing page', async () => {
    const response = await fetch(`${base}/r/DEMO`, { redirect: 'manual' });
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe(`${base}/demo/?ref=DEMO`);
  });

  const pages: Array<[string, number, string | null]> = [
    ['/demo/', 200, 'text/html; charset=utf-8'],
    ['/demo/index.html', 200, 'text/html; charset=utf-8'],
    ['/demo/signup.html', 200, 'text/html; charset=utf-8'],
    ['/demo/checkout.html', 200, 'text/html; charset=utf-8'],
    ['/demo/demo.js', 200, 'application/javascript; charset=utf-8'],
    ['/demo/demo.css', 200, 'text/css; charset=utf-8'],
    ['/demo/nope.html', 404, null],
    ['/demo/..%2F..%2Fpackage.json', 404, null],
    ['/demo/%2e%2e/src/demo.ts', 404, null],
    ['/demo/constructor', 404, null],
    ['/demo/__proto__', 404, null],
  ];

  it.each(pages)('GET %s → %s', async (path, status, type) => {
    const response = await fetch(base + path);
    expect(response.status).toBe(status);
    if (type) {
      expect(response.headers.get('content-type')).toBe(type);
      expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    } else {
      expect((await response.json()).error.code).toBe('not_found');
    }
  });

  it('redirects /demo to /demo/', async () => {
    const response = await fetch(`${base}/demo`, { redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('/demo/');
  });

  it('has no inline script in its pages (the CSP would block it)', async () => {
    for (const page of ['index.html', 'signup.html', 'checkout.html']) {
      const html = await (await fetch(`${base}/demo/${page}`)).text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    }
  });
});
