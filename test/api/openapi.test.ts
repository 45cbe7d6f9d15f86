/**
 * The OpenAPI document through the real app, on every database: served without a key,
 * OpenAPI 3.1.0, every path, and request schemas derived from the zod schemas.
 */
import type Router from '@koa/router';
import { describe, expect, it } from 'vitest';
import { OPERATIONS } from '../../collector/src/openapi.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';

describe.each(DATABASES)('openapi (%s)', (kind) => {
  let api: TestApp;
  useTestApp(kind, (suite) => ({ api } = suite));

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

  it('documents every route the app serves, and serves every documented one', () => {
    const served = api.app.middleware
      .flatMap((middleware) => (middleware as { router?: Router }).router?.stack ?? [])
      // The API, the redirect link, the portal page and the home page; not the static
      // bundles (/r.js, /admin, /demo) nor CORS preflights or catch-all redirects.
      .filter((layer) => /^\/(v1\/|r\/|portal\/:|portal\.js$|$)/.test(String(layer.path)) && layer.methods.length <= 2)
      .flatMap((layer) =>
        layer.methods.filter((method) => method !== 'HEAD' && method !== 'OPTIONS').map((method) => ({ method, path: String(layer.path) })),
      );
    expect(served.length).toBeGreaterThan(50);
    // A route template matches a documented path when its parameters stand for any one segment.
    const matches = (template: string, path: string) =>
      new RegExp(`^${template.replace(/[.]/g, '\\.').replace(/:\w+|\{\w+\}/g, '[^/]+')}$`).test(path.replace(/\{\w+\}/g, 'x'));
    const undocumented = served
      .filter((route) => !OPERATIONS.some((op) => op.method.toUpperCase() === route.method && matches(route.path, op.path)))
      .map((route) => `${route.method} ${route.path}`);
    expect(undocumented).toEqual([]);
    const unserved = OPERATIONS.filter(
      (op) => !served.some((route) => route.method === op.method.toUpperCase() && matches(route.path, op.path)),
    ).map((op) => `${op.method.toUpperCase()} ${op.path}`);
    expect(unserved).toEqual([]);
  });
});
