/**
 * The demo: seedDemo on an empty database, and the /demo/* pages with the
 * publishable key they need, served next to the real API.
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig, type Config } from '../../collector/src/config.ts';
import { seedDemo } from '../../collector/src/demo.ts';
import { createLogger } from '../../collector/src/logger.ts';
import { DATABASES, openTestDb, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';

/** A stand-in for process.stdout: a terminal or not, keeping what was written. */
function fakeStdout(isTTY: boolean) {
  const out = {
    isTTY,
    text: '',
    write: (chunk: string) => {
      out.text += chunk;
      return true;
    },
  };
  return out;
}

describe.each(DATABASES)('demo (%s)', (kind) => {
  let testDb: TestDb;
  let base: string;
  let config: Config;
  const logger = createLogger('silent');

  // No operator token, as in a demo started from the command line.
  useTestApp(
    kind,
    (suite) =>
      ({
        testDb,
        api: { url: base, config },
      } = suite),
    { env: { ADMIN_TOKEN: '' } },
  );
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

  it('seeds a program, a referrer with the code DEMO, and prints the links and keys on a terminal', async () => {
    const terminal = fakeStdout(true);
    const seed = await seedDemo(testDb.db, config, logger, terminal);
    expect(seed).toMatchObject({
      link: `${base}/r/DEMO`,
      landingUrl: `${base}/demo/`,
      dashboardUrl: `${base}/admin`,
      keys: { publishable: expect.stringMatching(/^pk_/), secret: expect.stringMatching(/^sk_/) },
    });
    for (const text of [seed!.link, seed!.dashboardUrl, seed!.keys.publishable, seed!.keys.secret]) expect(terminal.text).toContain(text);

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

describe.each(DATABASES)('where the demo is created, and what it prints (%s)', (kind) => {
  const logger = createLogger('silent');
  const base = loadConfig({ LOG_LEVEL: 'silent', IP_HASH_SECRET: 'test-ip-hash-secret-0123456789' });
  const onPostgres = { ...base, databaseUrl: 'postgres://collector@db.internal/referrals' };
  const opened: TestDb[] = [];
  afterAll(async () => {
    for (const testDb of opened) await testDb.close();
  });
  /** A fresh database per case: the demo is made only while there is no program. */
  const freshDb = async () => {
    const testDb = await openTestDb(kind);
    opened.push(testDb);
    return testDb.db;
  };
  const programCount = async (db: TestDb['db']) => Number((await db('programs').count({ n: '*' }))[0]?.n);

  it('DEMO=auto on DATABASE_URL (a production server): no demo program, nothing printed', async () => {
    const db = await freshDb();
    const out = fakeStdout(true);
    expect(onPostgres.demo).toBe('auto');
    expect(await seedDemo(db, onPostgres, logger, out)).toBeUndefined();
    expect(await programCount(db)).toBe(0);
    expect(out.text).toBe('');
  });

  it('DEMO=on creates it on DATABASE_URL too', async () => {
    const db = await freshDb();
    const seed = await seedDemo(db, { ...onPostgres, demo: 'on' }, logger, fakeStdout(true));
    expect(seed?.keys.secret).toMatch(/^sk_/);
    expect(await programCount(db)).toBe(1);
  });

  it('prints no secret key when stdout is not a terminal (logs keep it), but says how to get one', async () => {
    const db = await freshDb();
    const out = fakeStdout(false);
    const seed = await seedDemo(db, base, logger, out);
    expect(seed).toBeDefined();
    expect(out.text).not.toContain('sk_');
    expect(out.text).not.toContain(seed!.keys.secret);
    for (const text of [seed!.link, seed!.dashboardUrl, seed!.keys.publishable]) expect(out.text).toContain(text);
    expect(out.text).toMatch(/secret key +not printed/);
    expect(out.text).toContain('npx referral program create');
  });
});
