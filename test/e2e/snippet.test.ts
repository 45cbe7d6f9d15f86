/**
 * The snippet in a real Chromium: a host site on one origin loads /r.js from the
 * collector on another, and the clicks and events land in the real database.
 * Covers capture, signup and purchase, queued calls, the /r/CODE redirect, SPA
 * navigation, retries after a failed send, and silence for bots and opt-outs.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../collector/src/logger.ts';
import { seedDemo } from '../../collector/src/demo.ts';
import type { TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { buildParticipant, buildProgram } from '../helpers/factories.ts';
import { useTestApp } from '../helpers/suite.ts';

const LOADER_STUB = 'window.referral=window.referral||function(){(referral.q=referral.q||[]).push(arguments)}';

async function listen(server: Server, host: string): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

describe('snippet in Chromium (pglite)', () => {
  let db: Knex;
  let collector: TestApp;
  let host: Server;
  let collectorUrl: string;
  let hostUrl: string;
  let browser: Browser;
  let publishable: string;
  let code: string;
  /** data-* attributes the host's pages put on the snippet tag. */
  let attributes: Record<string, string> = {};
  /** An inline script the host's pages run right after the stub, before /r.js has loaded. */
  let inline = '';

  useTestApp('pglite', (suite) => ({ db, api: collector } = suite));
  beforeAll(async () => {
    collectorUrl = collector.url;

    // The host site: another origin (localhost vs 127.0.0.1), pasting the two tags.
    host = createServer((req, res) => {
      const tag = Object.entries({ key: publishable, ...attributes })
        .map(([name, value]) => ` data-${name}="${value}"`)
        .join('');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>Shop</title><script>${LOADER_STUB}</script><script>${inline}</script>
<script async src="${collectorUrl}/r.js"${tag}></script><h1>${req.url}</h1>`);
    });
    hostUrl = await listen(host, 'localhost');

    const program = await buildProgram(collector, { name: 'E2E shop', origins: [hostUrl], landingUrl: `${hostUrl}/welcome` });
    publishable = program.publishable;
    code = (await buildParticipant(collector, program, { externalId: 'alice', email: 'alice@example.com' })).code;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (host ? host.close(() => resolve()) : resolve()));
  });

  /** A fresh visitor. Playwright's Chromium reports navigator.webdriver; a human's does not. */
  async function visitor(
    options: { bot?: boolean; optedOut?: boolean } = {},
  ): Promise<{ context: BrowserContext; page: Page; sent: string[]; errors: string[] }> {
    const context = await browser.newContext();
    if (!options.bot) await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false }));
    if (options.optedOut) await context.addInitScript(() => localStorage.setItem('_referral_optout', '1'));
    const page = await context.newPage();
    const sent: string[] = [];
    const errors: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/v1/')) sent.push(`${request.method()} ${new URL(request.url()).pathname}`);
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
    return { context, page, sent, errors };
  }

  const ready = (page: Page) => page.waitForFunction(() => typeof (window as any).referral?.get === 'function');
  const getReferral = (page: Page) => page.evaluate(() => (window as any).referral.get() as { code: string; vid: string } | null);
  const conversions = (eventId: string) => db('conversions').where({ event_id: eventId });

  it('captures ?ref, keeps it first-party, and reports the click', async () => {
    attributes = {};
    const { context, page, errors } = await visitor();
    await page.goto(`${hostUrl}/pricing?ref=${code}`);
    await ready(page);
    const referral = await getReferral(page);
    expect(referral).toEqual({ code, vid: expect.stringMatching(/^[\w-]{8,64}$/) });

    const [cookie] = (await context.cookies(hostUrl)).filter((c) => c.name === '_referral');
    expect(cookie).toMatchObject({ sameSite: 'Lax', secure: false, path: '/' });
    expect(cookie!.expires * 1000 - Date.now()).toBeGreaterThan(59 * 864e5);
    expect(JSON.parse(decodeURIComponent(cookie!.value))).toMatchObject(referral!);
    expect(await page.evaluate(() => localStorage.getItem('_referral'))).toBe(decodeURIComponent(cookie!.value));

    await expect.poll(() => db('clicks').where({ vid: referral!.vid }).first('url')).toEqual({ url: `${hostUrl}/pricing?ref=${code}` });
    expect(errors).toEqual([]);
    await context.close();
  });

  it('attributes a signup and records a purchase, including calls queued before load', async () => {
    const { context, page, errors } = await visitor();
    inline = `referral('signup', { userId: 'bob', email: 'bob@example.com' });`;
    await page.goto(`${hostUrl}/?ref=${code}`);
    inline = '';
    await ready(page);
    const alice = await db('participants').where({ external_id: 'alice' }).first();
    // Until bob is referred by alice: a row for bob alone (referred_by null) is not enough.
    const referrerOfBob = async () => (await db('participants').where({ external_id: 'bob' }).first('referred_by'))?.referred_by;
    await expect.poll(referrerOfBob).toBe(alice.id);
    const bob = await db('participants').where({ external_id: 'bob' }).first();
    expect(bob.referred_by).toBe(alice.id);
    expect(bob.email).toBe('bob@example.com');

    await page.evaluate(() =>
      (window as any).referral('purchase', { userId: 'bob', orderId: 'order-e2e-1', amount: 4900, currency: 'usd' }),
    );
    await expect
      .poll(() => conversions('order-e2e-1').first('type', 'amount', 'currency', 'source'))
      .toMatchObject({ type: 'purchase', currency: 'USD', source: 'browser' });
    expect(Number((await conversions('order-e2e-1').first('amount')).amount)).toBe(4900);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('follows a /r/CODE link to the landing page and counts one click', async () => {
    const { context, page } = await visitor();
    await page.goto(`${collectorUrl}/r/${code}`);
    expect(page.url()).toBe(`${hostUrl}/welcome?ref=${code}`);
    await ready(page);
    const { vid } = (await getReferral(page))!;
    // The redirect recorded the click; the snippet's report claims it (same code and IP) instead of adding one.
    await expect
      .poll(() =>
        db('clicks')
          .where({ vid })
          .count({ n: '*' })
          .then((rows) => Number(rows[0]?.n)),
      )
      .toBe(1);
    await context.close();
  });

  it('captures a code arriving through history.pushState and cleans the URL when asked', async () => {
    attributes = { 'clean-url': '' };
    const { context, page, sent } = await visitor();
    await page.goto(`${hostUrl}/app`);
    await ready(page);
    expect(await getReferral(page)).toBeNull();
    const click = page.waitForRequest((request) => request.url().endsWith('/v1/clicks'));
    await page.evaluate((c) => history.pushState({}, '', `/app/invite?ref=${c}&tab=2`), code);
    await click;
    expect((await getReferral(page))?.code).toBe(code);
    expect(page.url()).toBe(`${hostUrl}/app/invite?tab=2`);
    expect(sent).toEqual(['POST /v1/clicks']);
    attributes = {};
    await context.close();
  });

  it('retries a failed event on `online`, with the same eventId, stored once', async () => {
    const { context, page } = await visitor();
    await page.clock.install();
    await page.goto(`${hostUrl}/?ref=${code}`);
    await ready(page);
    await page.route(`${collectorUrl}/v1/events`, (route) => route.abort('internetdisconnected'));
    await page.evaluate(() => (window as any).referral('signup', { userId: 'carol' }));
    await expect.poll(() => page.evaluate(() => JSON.parse(localStorage.getItem('_referral_queue') || '[]').length)).toBe(1);
    const queued = await page.evaluate(() => JSON.parse(localStorage.getItem('_referral_queue')!) as [string, string][]);
    const body = queued[0]?.[1] ?? '';
    const eventId = JSON.parse(body).eventId as string;
    expect(await conversions(eventId).first()).toBeUndefined();

    await page.unroute(`${collectorUrl}/v1/events`);
    await page.clock.fastForward(31_000);
    const resent = page.waitForResponse((response) => response.url().endsWith('/v1/events'));
    await page.evaluate(() => dispatchEvent(new Event('online')));
    expect((await resent).status()).toBe(202);
    expect(JSON.parse((await resent).request().postData()!).eventId).toBe(eventId);
    await expect.poll(() => page.evaluate(() => localStorage.getItem('_referral_queue'))).toBe('[]');

    // The collector stores an eventId once, however often it arrives.
    const again = await page.evaluate(async ([url, text]) => (await fetch(url, { method: 'POST', body: text, keepalive: true })).status, [
      `${collectorUrl}/v1/events`,
      body,
    ] as const);
    expect(again).toBe(202);
    await expect
      .poll(() =>
        conversions(eventId)
          .count({ n: '*' })
          .then((rows) => Number(rows[0]?.n)),
      )
      .toBe(1);
    await context.close();
  });

  it('sends nothing for a bot (navigator.webdriver) or an opted-out visitor', async () => {
    for (const options of [{ bot: true }, { optedOut: true }]) {
      const { context, page, sent, errors } = await visitor(options);
      inline = `referral('signup', { userId: 'ghost' });`;
      await page.goto(`${hostUrl}/?ref=${code}`);
      inline = '';
      await ready(page);
      await page.evaluate(() => (window as any).referral('purchase', { userId: 'ghost', orderId: 'ghost-1', amount: 1, currency: 'USD' }));
      await page.waitForTimeout(300);
      expect(sent, JSON.stringify(options)).toEqual([]);
      expect(await getReferral(page)).toBeNull();
      expect((await context.cookies(hostUrl)).map((c) => c.name)).not.toContain('_referral');
      expect(errors).toEqual([]);
      await context.close();
    }
    expect(await db('participants').where({ external_id: 'ghost' }).first()).toBeUndefined();
  });

  it('serves /r.js cacheably to any origin', async () => {
    const response = await fetch(`${collectorUrl}/r.js`);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    // As a browser cache revalidates (fetch() would add Cache-Control: no-cache to a hand-set If-None-Match).
    const revalidated = await fetch(`${collectorUrl}/r.js`, {
      headers: { 'if-none-match': response.headers.get('etag')!, 'cache-control': 'max-age=0' },
    });
    expect(revalidated.status).toBe(304);
  });
});

describe('demo shop in Chromium (pglite)', () => {
  let db: Knex;
  let app: TestApp;
  let base: string;
  let browser: Browser;

  // No operator token, as in a demo started from the command line.
  useTestApp('pglite', (suite) => ({ db, api: app } = suite), { env: { ADMIN_TOKEN: '' } });
  beforeAll(async () => {
    base = app.url;
    const write = process.stdout.write;
    process.stdout.write = () => true; // the seed prints its banner
    try {
      await seedDemo(db, app.config, createLogger(app.config.logLevel));
    } finally {
      process.stdout.write = write;
    }
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('follows /r/DEMO, shows the referral, and attributes a signup and a purchase', async () => {
    const context = await browser.newContext();
    await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false }));
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));

    await page.goto(`${base}/r/DEMO`);
    expect(page.url()).toBe(`${base}/demo/?ref=DEMO`);
    await expect.poll(() => page.textContent('#referral-state')).toContain('"code": "DEMO"');

    await page.click('text=Sign up');
    await page.fill('input[name=userId]', 'demo-friend');
    await page.fill('input[name=email]', 'friend@example.com');
    await page.click('button[type=submit]');
    await expect
      .poll(() => db('participants').where({ external_id: 'demo-friend' }).first('referred_by'))
      .toMatchObject({ referred_by: expect.any(String) });

    await page.click('text=Checkout');
    await page.fill('input[name=userId]', 'demo-friend');
    await page.fill('input[name=orderId]', 'demo-order-1');
    await page.click('button[type=submit]');
    await expect.poll(() => db('conversions').where({ event_id: 'demo-order-1' }).first('type')).toEqual({ type: 'purchase' });
    expect(problems).toEqual([]);
    await context.close();
  });
});
