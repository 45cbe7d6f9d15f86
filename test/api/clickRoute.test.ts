/**
 * POST /v1/clicks is answered ahead of the routers (exactRoute), and the email routes
 * are entered only for their own paths. Every other spelling of a path still reaches
 * its router: these answers must be the same whichever way a request is served.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, newVid, type ProgramFixture } from '../helpers/factories.ts';

const ORIGIN = 'https://shop.example';

/** The parts of an answer a client sees: status, body and the headers that matter here. */
function seen(reply: Awaited<ReturnType<TestApp['post']>>) {
  return {
    status: reply.status,
    body: reply.body,
    type: reply.headers.get('content-type'),
    allowOrigin: reply.headers.get('access-control-allow-origin'),
    vary: reply.headers.get('vary'),
  };
}

describe.each(DATABASES)('the click route and the routers (%s)', (kind) => {
  let api: TestApp;
  let program: ProgramFixture;
  let code: string;

  useTestApp(kind, (suite) => ({ api } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, { origins: [ORIGIN] });
    code = (await buildParticipant(api, program)).code;
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    api.post(path, body, { headers: { 'content-type': 'text/plain', ...headers } });

  it('answers a click the same on the exact path and on spellings only the router matches', async () => {
    for (const path of ['/v1/clicks', '/v1/clicks/', '/V1/Clicks']) {
      const valid = seen(await post(path, { key: program.publishable, code, vid: newVid() }, { origin: ORIGIN }));
      expect(valid, path).toEqual({
        status: 202,
        body: { valid: true },
        type: 'application/json; charset=utf-8',
        allowOrigin: ORIGIN,
        vary: 'Origin',
      });
      const unknown = seen(await post(path, { key: program.publishable, code: 'NOSUCHCODE', vid: newVid() }));
      expect(unknown, path).toMatchObject({ status: 202, body: { valid: false }, type: 'application/json; charset=utf-8' });
    }
  });

  it('refuses the same way on every spelling: a foreign origin, a bad key, a bad body', async () => {
    for (const path of ['/v1/clicks', '/v1/clicks/']) {
      const foreign = await post(path, { key: program.publishable, code, vid: newVid() }, { origin: 'https://evil.example' });
      expect(foreign.status, path).toBe(403);
      expect(foreign.body.error.code).toBe('origin_not_allowed');
      expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
      const badKey = await post(path, { key: 'pk_nope', code, vid: newVid() }, { origin: ORIGIN });
      expect(badKey.status, path).toBe(401);
      // An error answer carries CORS headers for a known origin, so the snippet can read it.
      expect(badKey.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      const invalid = await post(path, { key: program.publishable, code: '' });
      expect(invalid.status, path).toBe(422);
      expect(invalid.body.error.code).toBe('validation_failed');
    }
  });

  it('still answers other methods on the click path through the router (405 with Allow)', async () => {
    const reply = await api.get('/v1/clicks');
    expect(reply.status).toBe(405);
    expect(reply.headers.get('allow')).toContain('POST');
  });

  it('still serves the email routes on any spelling of their paths', async () => {
    const exact = await api.get('/v1/emails', { auth: ADMIN_TOKEN });
    const cased = await api.get('/V1/Emails/', { auth: ADMIN_TOKEN });
    expect(exact.status).not.toBe(404);
    expect({ status: cased.status, body: cased.body }).toEqual({ status: exact.status, body: exact.body });
    expect((await api.get('/v1/emailsx')).status).toBe(404);
  });
});
