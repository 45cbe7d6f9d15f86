/**
 * Request bodies and the error shape through the real app, on every database:
 * malformed JSON is a 400, a missing body a 422 with field messages, bodies up to
 * 64 KiB are read and larger ones (with Content-Length or chunked) are a 413 that
 * writes nothing, and an unknown route answers in the JSON error shape.
 */
import { request as httpRequest } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { expectValidation } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const BODY_LIMIT = 64 * 1024;

const INVALID_JSON = { error: { code: 'invalid_json', message: 'The request body is not valid JSON' } };
const TOO_LARGE = { error: { code: 'payload_too_large', message: `Request bodies are limited to ${BODY_LIMIT} bytes` } };

/** POSTs a body in chunks without Content-Length (Transfer-Encoding: chunked). */
function postChunked(url: string, path: string, chunks: string[], auth: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url + path,
      { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${auth}` } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        res.on('error', reject);
      },
    );
    // The server may answer 413 and stop reading before every chunk is written.
    req.on('error', () => undefined);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe.each(DATABASES)('request bodies (%s)', (kind) => {
  let api: TestApp;
  let program: ProgramFixture;

  useTestApp(kind, (suite) => ({ api } = suite));
  beforeAll(async () => {
    program = await buildProgram(api);
  });

  describe('request bodies and the error shape', () => {
    it('answers 400 invalid_json to malformed JSON', async () => {
      for (const raw of ['{"externalId":', '{externalId: "x"}', 'nope', '{"a":1}}']) {
        const reply = await api.post('/v1/participants', undefined, {
          auth: program.secret,
          raw,
          headers: { 'content-type': 'application/json' },
        });
        expect(reply.status, raw).toBe(400);
        expect(reply.body).toEqual(INVALID_JSON);
      }
      const plain = await api.post('/v1/participants', undefined, {
        auth: program.secret,
        raw: '{oops',
        headers: { 'content-type': 'text/plain' },
      });
      expect(plain.status).toBe(400);
      expect(plain.body).toEqual(INVALID_JSON);
    });

    it('answers 422 with field messages when the body is missing', async () => {
      const fields = expectValidation(await api.post('/v1/participants', undefined, { auth: program.secret }));
      expect(Object.keys(fields).length).toBeGreaterThan(0);
    });

    it('accepts a body of exactly 64 KiB', async () => {
      const externalId = uniq('big-');
      const json = JSON.stringify({ externalId });
      const raw = json + ' '.repeat(BODY_LIMIT - Buffer.byteLength(json));
      expect(Buffer.byteLength(raw)).toBe(BODY_LIMIT);
      const reply = await api.post('/v1/participants', undefined, {
        auth: program.secret,
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(reply.status, reply.text).toBe(201);
      expect(reply.body.externalId).toBe(externalId);
    });

    it('answers 413 to a body over 64 KiB (with Content-Length)', async () => {
      const externalId = uniq('huge-');
      const json = JSON.stringify({ externalId });
      const raw = json + ' '.repeat(BODY_LIMIT + 1 - Buffer.byteLength(json));
      const reply = await api.post('/v1/participants', undefined, {
        auth: program.secret,
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(reply.status).toBe(413);
      expect(reply.body).toEqual(TOO_LARGE);
      expect((await api.get(`/v1/participants/${externalId}`, { auth: program.secret })).status).toBe(404);
    });

    it('answers 413 to a chunked body over 64 KiB', async () => {
      const externalId = uniq('chunked-');
      const chunks = [`{"externalId":"${externalId}","name":"`, ...Array.from({ length: 9 }, () => 'n'.repeat(8 * 1024)), '"}'];
      const reply = await postChunked(api.url, '/v1/participants', chunks, program.secret);
      expect(reply.status).toBe(413);
      expect(reply.body).toEqual(TOO_LARGE);
      expect((await api.get(`/v1/participants/${externalId}`, { auth: program.secret })).status).toBe(404);
    });

    it('answers an unknown route with the JSON error shape', async () => {
      const reply = await api.get('/v1/no-such-thing');
      expect(reply.status).toBe(404);
      expect(reply.headers.get('content-type')).toContain('application/json');
      expect(reply.body).toEqual({ error: { code: 'not_found', message: 'No route for GET /v1/no-such-thing' } });
    });
  });
});
