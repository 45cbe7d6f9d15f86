/**
 * GET /r.js through a Koa app built from the snippet router alone.
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../collector/src/config.ts';
import { handleErrors } from '../../collector/src/http/middleware.ts';
import { createRateLimits } from '../../collector/src/http/rateLimit.ts';
import { createLogger } from '../../collector/src/logger.ts';
import { snippetRoutes } from '../../collector/src/routes/snippet.ts';
import { buildSnippetBundle } from '../../collector/src/snippet-bundle.ts';

let server: Server;
let base: string;
let expected: string;

beforeAll(async () => {
  const config = loadConfig({ LOG_LEVEL: 'silent' });
  const logger = createLogger('silent');
  const app = new Koa();
  app.silent = true;
  app.use(handleErrors(logger));
  const router = snippetRoutes({ limits: createRateLimits(config, logger) });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  expected = (await buildSnippetBundle()).code;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A raw request (fetch would decompress gzip for us; here we check what was sent). */
function get(headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = request(`${base}/r.js`, { method, headers: { 'accept-encoding': 'identity', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /r.js', () => {
  it('serves the snippet with its headers', async () => {
    const { body, ...response } = await get();
    expect(response.status).toBe(200);
    expect(body.toString('utf8')).toBe(expected);
    expect(
      Object.fromEntries(
        ['content-type', 'cache-control', 'access-control-allow-origin', 'x-content-type-options'].map((name) => [
          name,
          response.headers[name],
        ]),
      ),
    ).toEqual({
      'content-type': 'application/javascript; charset=utf-8',
      'cache-control': 'public, max-age=3600',
      'access-control-allow-origin': '*',
      'x-content-type-options': 'nosniff',
    });
    expect(response.headers.etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(response.headers.vary).toMatch(/accept-encoding/i);
  });

  it('answers 304 to a matching If-None-Match, 200 otherwise', async () => {
    const etag = String((await get()).headers.etag);
    const cases: Array<[string, number]> = [
      [etag, 304],
      [`"other", ${etag}`, 304],
      ['*', 304],
      ['"other"', 200],
      [`W/${etag}`, 304], // weak comparison, as RFC 9110 asks for If-None-Match
    ];
    for (const [ifNoneMatch, status] of cases) {
      const { body, ...response } = await get({ 'if-none-match': ifNoneMatch });
      expect(response.status, ifNoneMatch).toBe(status);
      if (status === 304) expect(body.length).toBe(0);
    }
  });

  it('sends gzip when accepted, under its own strong ETag', async () => {
    const plain = await get();
    const { body, ...response } = await get({ 'accept-encoding': 'gzip, deflate, br' });
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(body).toString('utf8')).toBe(expected);
    const etag = String(response.headers.etag);
    expect(etag).not.toBe(plain.headers.etag);
    expect((await get({ 'accept-encoding': 'gzip', 'if-none-match': etag })).status).toBe(304);
  });

  it('answers HEAD without a body', async () => {
    const { body, ...response } = await get({}, 'HEAD');
    expect(response.status).toBe(200);
    expect(body.length).toBe(0);
    expect(response.headers['content-length']).toBe(String(Buffer.byteLength(expected)));
  });
});
