/**
 * The referrer portal in a real Chromium. A host site on an allowed origin
 * (localhost) embeds it with `referral('portal', …)` from /portal.js, loaded before
 * and after /r.js; a host on an origin the program does not list (127.0.0.1, another
 * port) gets the frame refused by frame-ancestors. In the frame the referrer copies the
 * link (the clipboard holds it), the QR code decodes to the link (jsQR, here in Node),
 * the counts equal the API's after clicks, a signup and a purchase, and payout details
 * are saved through the form. Screenshots at desktop and phone widths go to
 * test-results/screens/portal-*.png.
 */
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import jsQRModule from 'jsqr';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PortalTokenResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/chromium.ts';
import { buildParticipant, buildProgram, newVid, type ProgramFixture } from '../helpers/factories.ts';
import { click, expectOk, participant, serverPurchase, serverSignup } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const LOADER_STUB = 'window.referral=window.referral||function(){(referral.q=referral.q||[]).push(arguments)}';
const SCREENS = 'test-results/screens';
/** jsqr is CommonJS: under NodeNext its typed default export is `.default` (at run time both are the function). */
const jsQR = jsQRModule.default;
const DESKTOP = { width: 1280, height: 900 };
const RULES = [
  { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
  { id: 'purchase-cash', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, holdDays: 30 },
  { id: 'first-signup-coupon', on: 'signup', to: 'referrer', reward: { kind: 'coupon', coupon: 'THANKS-10' }, when: { atReferrals: 1 } },
];
const PHONE = { width: 390, height: 844 };

async function listen(server: Server, host: string): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

const close = (server: Server | undefined) => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));

describe('referrer portal in Chromium (pglite)', () => {
  let api: TestApp;
  let program: ProgramFixture;
  let alice: { externalId: string; code: string; link: string };
  let browser: Browser;
  /** The host's site, on an origin the program lists. */
  let allowed: Server;
  let allowedUrl: string;
  /** Another site, on an origin the program does not list. */
  let foreign: Server;
  let foreignUrl: string;
  /** The page each host serves next: set by a test before it navigates. */
  let hostPage = '';

  useTestApp('pglite', (suite) => ({ api } = suite));
  beforeAll(async () => {
    const serve = () =>
      createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(hostPage);
      });
    allowed = serve();
    foreign = serve();
    allowedUrl = await listen(allowed, 'localhost');
    foreignUrl = await listen(foreign, '127.0.0.1');
    program = await buildProgram(api, {
      name: 'Acme Shop',
      origins: [allowedUrl],
      landingUrl: `${allowedUrl}/welcome`,
      settings: { rewardRules: RULES },
    });
    alice = await buildParticipant(api, program, { externalId: 'alice', email: 'alice@example.com', name: 'Alice Archer' });
    // Some history: clicks, two signups (one with an email to mask), a purchase.
    for (let i = 0; i < 4; i++) await click(api, program, { code: alice.code, vid: newVid() });
    await api.post(
      '/v1/conversions',
      { type: 'signup', eventId: 'signup-jane', externalId: 'jane', email: 'jane.doe@gmail.com', referral: { code: alice.code } },
      { auth: program.secret },
    );
    await serverSignup(api, program, 'bob', alice.code);
    await serverPurchase(api, program, 'jane', 'order-jane-1', 4900, 'USD');
    await serverPurchase(api, program, 'bob', 'order-bob-1', 2500, 'EUR');
    browser = await launchChromium();
    await mkdir(SCREENS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await close(allowed);
    await close(foreign);
  });

  async function token(): Promise<string> {
    const reply = await api.post<PortalTokenResponse>(`/v1/participants/${alice.externalId}/portal`, undefined, { auth: program.secret });
    return expectOk(reply, 201).token;
  }

  interface Visit {
    context: BrowserContext;
    page: Page;
    /** Console errors, page errors and CSP violations from every frame. */
    problems: string[];
  }

  /** A fresh visitor (not a bot to /r.js), allowed to use the clipboard. */
  async function visit(viewport = DESKTOP): Promise<Visit> {
    const context = await browser.newContext({ viewport });
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false });
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
      });
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    return { context, page, problems };
  }

  /** The portal frame inside the host page, once the app has rendered in it. */
  async function portalFrame(page: Page): Promise<Frame> {
    const handle = await page.waitForSelector('iframe[data-referral-portal]');
    const frame = await handle.contentFrame();
    if (!frame) throw new Error('the portal iframe has no frame');
    await frame.waitForSelector('[data-testid="link"]:not([value=""])', { state: 'attached' });
    await frame.waitForFunction(() => (document.querySelector('#link') as HTMLInputElement | null)?.value.startsWith('http'));
    return frame;
  }

  const text = (frame: Frame, testId: string) => frame.locator(`[data-testid="${testId}"]`).innerText();

  /**
   * A screenshot of the whole page. The viewport is stretched to the page first:
   * Chromium paints a cross-origin frame only near the viewport, so a full-page shot
   * of a long embedded portal would end in blank space.
   */
  async function screenshot(page: Page, name: string) {
    const width = page.viewportSize()?.width ?? DESKTOP.width;
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: `${SCREENS}/${name}.png` });
  }

  /** Waits until the host's iframe is as tall as the portal inside it (the page posted its height). */
  async function expectFitted(page: Page, frame: Frame) {
    await expect
      .poll(async () => {
        const outer = (await page.locator('iframe[data-referral-portal]').boundingBox())?.height ?? 0;
        const inner = await frame.evaluate(() => Math.ceil(document.body.getBoundingClientRect().height));
        return Math.abs(outer - inner);
      })
      .toBeLessThanOrEqual(1);
  }

  it('shows the portal when /portal.js loads before /r.js, with the call queued before both; /r.js still works behind it', async () => {
    const { context, page, problems } = await visit();
    hostPage = `<!doctype html><title>Your account</title><script>${LOADER_STUB}</script>
<body><h1>Your account</h1><div id="portal"></div>
<script>referral('portal', { element: '#portal', token: ${JSON.stringify(await token())} });
referral('ready', function () { window.readyRan = true; });</script>
<script src="${api.url}/portal.js"></script>
<script async src="${api.url}/r.js" data-key="${program.publishable}"></script></body>`;
    await page.goto(`${allowedUrl}/account?ref=${alice.code}`);
    const frame = await portalFrame(page);
    expect(await frame.locator('[data-testid="link"]').inputValue()).toBe(alice.link);
    // /r.js loaded after the wrapper: its tracker sits behind it.
    await page.waitForFunction(() => (window as any).readyRan === true);
    expect(await page.evaluate(() => (window as any).referral.get())).toEqual({ code: alice.code, vid: expect.any(String) });
    expect(await page.evaluate(() => (window as any).referral.q ?? null)).toBeNull();
    // The frame fits its content: the page reported its height.
    await expectFitted(page, frame);
    await screenshot(page, 'portal-embedded-desktop');
    expect(problems).toEqual([]);
    await context.close();
  });

  it('shows the portal when /portal.js loads after /r.js (on a phone)', async () => {
    const { context, page, problems } = await visit(PHONE);
    hostPage = `<!doctype html><title>Your account</title><script>${LOADER_STUB}</script>
<body><h1>Your account</h1><div id="portal"></div>
<script src="${api.url}/r.js" data-key="${program.publishable}"></script>
<script async src="${api.url}/portal.js" onload="window.portalLoaded = true"></script></body>`;
    await page.goto(`${allowedUrl}/account`);
    await page.waitForFunction(() => (window as any).portalLoaded === true);
    expect(await page.evaluate(() => typeof (window as any).referral.get)).toBe('function');
    await page.evaluate(
      (portalToken) => {
        (window as any).referral('portal', { element: document.getElementById('portal'), token: portalToken });
      },
      await token(),
    );
    const frame = await portalFrame(page);
    expect(await text(frame, 'program-name')).toBe('Acme Shop');
    await expectFitted(page, frame);
    await screenshot(page, 'portal-embedded-phone');
    expect(problems).toEqual([]);
    await context.close();
  });

  it('is refused by frame-ancestors on an origin the program does not list', async () => {
    const { context, page, problems } = await visit();
    hostPage = `<!doctype html><title>Elsewhere</title><script>${LOADER_STUB}</script>
<body><div id="portal"></div><script src="${api.url}/portal.js"></script>
<script>referral('portal', { element: '#portal', token: ${JSON.stringify(await token())} });</script></body>`;
    const answered = page.waitForResponse(
      (response) => response.url().startsWith(`${api.url}/portal/`) && response.request().resourceType() === 'document',
    );
    await page.goto(`${foreignUrl}/`);
    const response = await answered;
    expect(response.status()).toBe(200);
    expect(response.headers()['content-security-policy']).toContain(`frame-ancestors ${allowedUrl}`);
    const handle = await page.waitForSelector('iframe[data-referral-portal]');
    await expect.poll(async () => (await handle.contentFrame())?.url()).toMatch(/^chrome-error:/);
    const frame = await handle.contentFrame();
    expect(await frame?.locator('[data-testid="portal"]').count()).toBe(0);
    expect(await frame?.evaluate(() => document.body?.textContent ?? '')).not.toContain('Your link');
    expect(problems.join('\n')).toMatch(/frame-ancestors/);
    await context.close();
  });

  it('copies the link, its QR code decodes to the link, and the counts equal the API’s', async () => {
    const { context, page, problems } = await visit();
    hostPage = `<!doctype html><title>Your account</title><script>${LOADER_STUB}</script>
<body><div id="portal"></div><script src="${api.url}/portal.js"></script>
<script>referral('portal', { element: '#portal', token: ${JSON.stringify(await token())} });</script></body>`;
    await page.goto(`${allowedUrl}/account`);
    const frame = await portalFrame(page);

    await frame.locator('[data-testid="copy"]').click();
    await expect.poll(() => text(frame, 'copy-status')).toMatch(/Copied/);
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(alice.link);

    // The QR code as the referrer's phone would see it: drawn on a white canvas, then decoded.
    const pixels = await frame.evaluate(async () => {
      const img = document.querySelector('[data-testid="qr"]') as HTMLImageElement;
      const image = new Image();
      image.src = img.src;
      await image.decode();
      const size = 264;
      const canvas = document.createElement('canvas');
      canvas.width = size;
      canvas.height = size;
      const context2d = canvas.getContext('2d') as CanvasRenderingContext2D;
      context2d.fillStyle = '#fff';
      context2d.fillRect(0, 0, size, size);
      context2d.drawImage(image, 0, 0, size, size);
      const rgba = context2d.getImageData(0, 0, size, size).data;
      let binary = '';
      for (let i = 0; i < rgba.length; i += 0x8000) binary += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
      return { size, base64: btoa(binary) };
    });
    const decoded = jsQR(new Uint8ClampedArray(Buffer.from(pixels.base64, 'base64')), pixels.size, pixels.size);
    expect(decoded?.data).toBe(alice.link);

    const api_ = await participant(api, program, alice.externalId);
    expect(api_.stats.clicks).toBeGreaterThanOrEqual(4);
    expect(await text(frame, 'total-clicks')).toBe(String(api_.stats.clicks));
    expect(await text(frame, 'total-signups')).toBe(String(api_.stats.signups));
    expect(await text(frame, 'total-purchases')).toBe(String(api_.stats.purchases));
    expect([api_.stats.signups, api_.stats.purchases]).toEqual([2, 2]);

    const people = frame.locator('[data-testid="referral"]');
    await expect.poll(() => people.count()).toBe(2);
    expect(await frame.locator('[data-testid="referrals"]').innerText()).toContain('j***@gmail.com');
    expect(await frame.locator('body').innerText()).not.toContain('jane.doe');
    expect(await frame.locator('[data-testid="share-whatsapp"]').getAttribute('href')).toContain(encodeURIComponent(alice.link));
    expect(problems).toEqual([]);
    await context.close();
  });

  it('saves payout details through the form, with field messages for what is missing', async () => {
    const { context, page, problems } = await visit(PHONE);
    await page.goto(`${api.url}/portal/${await token()}`);
    await page.waitForSelector('[data-testid="link"]');
    await page.waitForFunction(() => (document.querySelector('#link') as HTMLInputElement).value !== '');
    await page.selectOption('[data-testid="payout-method"]', 'paypal');
    await page.click('[data-testid="payout-save"]');
    await expect.poll(() => page.locator('[data-testid="payout-errors"]').innerText()).toMatch(/Email: paypal payouts need the email/);
    await page.fill('[data-testid="payout-email"]', 'alice.pay@example.com');
    await page.click('[data-testid="payout-save"]');
    await expect.poll(() => page.locator('[data-testid="payout-status"]').innerText()).toBe('Saved.');
    const again = await api.get(`/v1/portal/me`, { headers: { authorization: `Portal ${await token()}` } });
    expect(again.body.payout).toEqual({ method: 'paypal', email: 'alice.pay@example.com' });

    // A payout run pays her USD cash reward (approved early, with a reason): the page lists it.
    const rewards = expectOk(await api.get(`/v1/rewards?participant=alice&status=pending`, { auth: program.secret }));
    const cash = (rewards.data as Array<{ id: string; kind: string; currency: string }>).find(
      (r) => r.kind === 'cash' && r.currency === 'USD',
    );
    expectOk(await api.post(`/v1/rewards/${cash?.id}/approve`, { force: true, reason: 'portal e2e' }, { auth: program.secret }));
    expectOk(await api.post('/v1/payouts', { currency: 'USD' }, { auth: program.secret }), 201);

    await page.reload();
    await page.waitForFunction(() => (document.querySelector('#link') as HTMLInputElement).value !== '');
    expect(await page.locator('[data-testid="payout-email"]').inputValue()).toBe('alice.pay@example.com');
    expect(await page.locator('[data-testid="payout"]').innerText()).toMatch(/\$4\.90[\s\S]*PayPal[\s\S]*On its way/);
    // Nothing on a phone is wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await screenshot(page, 'portal-phone');
    await page.setViewportSize(DESKTOP);
    await screenshot(page, 'portal-desktop');
    // 4xx answers the test provoked are logged by Chromium as failed loads.
    expect(problems.filter((problem) => !problem.includes('status of 422'))).toEqual([]);
    await context.close();
  });

  it('answers a link that no longer works with a friendly page', async () => {
    const { context, page } = await visit(PHONE);
    const response = await page.goto(`${api.url}/portal/${(await token()).slice(0, -3)}abc`);
    expect(response?.status()).toBe(401);
    expect(await page.locator('[data-testid="portal-refused"]').innerText()).toMatch(/not valid[\s\S]*Ask for a new one/);
    await page.screenshot({ path: `${SCREENS}/portal-refused-phone.png` });
    await context.close();
  });
});
