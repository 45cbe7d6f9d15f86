/**
 * Hostile input against every endpoint listed in GET /v1/openapi.json, through the
 * real app and database: generated bodies (mutated valid bodies, arbitrary JSON,
 * wrong types, huge strings around the 64 KiB limit, deep nesting, unicode, NUL
 * bytes, invalid JSON), content types, Authorization headers, Idempotency-Key,
 * Origin, path parameters and query strings. The collector must never answer a
 * 5xx and never crash, and every 4xx is the JSON error shape
 * `{ error: { code, message, fields? } }`.
 *
 * A failure prints the request and fast-check's seed: replay it with FUZZ_SEED=<seed>.
 * The cases the fuzz found are pinned at the end of the file as plain tests.
 */
import { Agent, request as httpRequest } from 'node:http';
import { createConnection } from 'node:net';
import fc from 'fast-check';
import Stripe from 'stripe';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApi } from '../../collector/src/openapi.ts';
import { ADMIN_TOKEN, type TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { newVid, buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';

/** Requests per endpoint: ~30 endpoints, so a few thousand in all on PGlite, fewer on PostgreSQL. */
const RUNS: Record<string, number> = { pglite: 90, postgres: 30 };
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2_147_483_647);
const STRIPE_SECRET = 'whsec_fuzz_0123456789abcdef';
const BODY_LIMIT = 64 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// The document served at /v1/openapi.json (checked against the live one below).
const DOCUMENT = buildOpenApi('http://collector.test');
interface Endpoint {
  method: string;
  path: string;
  auth: 'admin' | 'secret' | 'publishable' | 'none';
  query: string[];
  hasBody: boolean;
}
const ENDPOINTS: Endpoint[] = Object.entries(DOCUMENT.paths).flatMap(([path, operations]) =>
  Object.entries(operations as Record<string, any>).map(([method, op]) => {
    const security = (op.security ?? []) as Array<Record<string, string[]>>;
    const scheme = security[0] ? Object.keys(security[0])[0] : undefined;
    const bodySchema = op.requestBody?.content?.['application/json']?.schema;
    const auth =
      scheme === 'adminToken' ? 'admin' : scheme === 'secretKey' ? 'secret' : bodySchema?.properties?.key ? 'publishable' : 'none';
    const query = ((op.parameters ?? []) as Array<{ name: string; in: string }>).filter((p) => p.in === 'query').map((p) => p.name);
    return { method: method.toUpperCase(), path, auth, query, hasBody: Boolean(op.requestBody) } satisfies Endpoint;
  }),
);

// ---------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------

const OMIT = Symbol('omit');

const nastyStrings = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '\u202eevil',
  '=1+1',
  '@SUM(A1)',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  "'; drop table programs; --",
  '%00',
  '%',
  '%zz',
  'null',
  'true',
  '0',
  '-1',
  '1e309',
  'NaN',
  '__proto__',
  'constructor',
  'İstanbul',
  'ǅ',
  'ß',
  '🙂'.repeat(70),
  'x'.repeat(255),
  'x'.repeat(256),
  'A'.repeat(64),
  'A'.repeat(65),
  'x'.repeat(2049),
  'user@example.com',
  'USER@EXAMPLE.COM ',
  'javascript:alert(1)',
  'https://evil.example/',
  '2025-01-01',
  '2025-02-30',
  '+275760-09-13',
  '00000000-0000-0000-0000-000000000000',
);

/** Long strings of one character (multi-byte and JSON-escaped ones too), around and over the body limit. */
const bigString = fc
  .tuple(
    fc.constantFrom('a', 'é', '🙂', '\u0000', '"', '\\', '\n'),
    fc.oneof(fc.integer({ min: 300, max: 5000 }), fc.integer({ min: 10_000, max: 70_000 })),
  )
  .map(([char, n]) => char.repeat(Math.ceil(n / char.length)));

const weirdString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 3, arbitrary: nastyStrings },
  { weight: 1, arbitrary: bigString },
);

const weirdNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1, 1.5, 1e12, 1e12 + 1, 2 ** 53, 2 ** 63, -(2 ** 53), 1e308, -0, 0.1),
);

const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: weirdString },
  { weight: 2, arbitrary: weirdNumber },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(weirdString, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(weirdString, weirdString, { maxKeys: 3 }) },
);

/** A valid body with some fields kept, some dropped, some replaced by anything, some extra. */
function mutate(sample: unknown): fc.Arbitrary<unknown> {
  if (Array.isArray(sample)) {
    return fc.oneof(
      { weight: 4, arbitrary: fc.constant(sample) },
      { weight: 1, arbitrary: fc.array(weirdValue, { maxLength: 3 }) },
      { weight: 2, arbitrary: sample.length ? fc.array(mutate(sample[0]), { minLength: 1, maxLength: 3 }) : fc.constant([]) },
    );
  }
  if (sample && typeof sample === 'object') {
    const fields = Object.entries(sample).map(([key, value]) =>
      fc
        .oneof(
          { weight: 8, arbitrary: fc.constant(value) },
          { weight: 1, arbitrary: fc.constant(OMIT) },
          { weight: 2, arbitrary: weirdValue },
          { weight: value && typeof value === 'object' ? 3 : 1, arbitrary: mutate(value) },
        )
        .map((v) => [key, v] as const),
    );
    return fc
      .tuple(
        fc.tuple(...fields),
        fc.option(
          fc.dictionary(fc.oneof(weirdString, fc.constantFrom('__proto__', 'constructor', 'key', 'id')), weirdValue, { maxKeys: 2 }),
          { freq: 4 },
        ),
      )
      .map(([pairs, extra]) => ({ ...(extra ?? {}), ...Object.fromEntries(pairs.filter(([, v]) => v !== OMIT)) }));
  }
  return fc.oneof({ weight: 3, arbitrary: fc.constant(sample) }, { weight: 2, arbitrary: weirdValue });
}

/** Deeply nested JSON text, alone or in place of one field of a valid body. */
const deepJson = fc
  .tuple(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom('array', 'object'))
  .map(([depth, shape]) =>
    shape === 'array'
      ? '['.repeat(depth) + ']'.repeat(depth)
      : `${'{"a":'.repeat(Math.min(depth, 10_000))}1${'}'.repeat(Math.min(depth, 10_000))}`,
  );

/** Percent-encodes as UTF-8 (lone surrogates become U+FFFD), keeping `keep` characters raw. */
function encode(value: string, keep: RegExp = /[A-Za-z0-9\-._~]/): string {
  let out = '';
  for (const char of value) {
    if (keep.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
/** Like a careless client: reserved characters and stray `%` left raw (never `?`, `#` or controls). */
const looseEncode = (value: string) => encode(value, /[A-Za-z0-9\-._~!$&'()*+,;=:@%/]/);

const headerValue = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 200 });

const cursorValue = fc
  .tuple(
    fc.constantFrom('2025-01-01', '2025-01-01T00:00:00.000Z', '0', '1', '+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z', 'x'),
    fc.oneof(fc.uuid(), fc.string({ maxLength: 40 }), weirdNumber),
  )
  .map((key) => Buffer.from(JSON.stringify(key)).toString('base64url'));

const queryValues = new Map<string, fc.Arbitrary<string>>(
  Object.entries({
    from: fc.constantFrom(
      '2025-01-01',
      '2024-12-31',
      '2025-02-30',
      '2025-13-01',
      '0000-01-01',
      '9999-12-31',
      '2025-01-01T00:00:00Z',
      '20250101',
      '1970-01-01',
    ),
    to: fc.constantFrom('2025-01-31', '2026-12-31', '2025-02-29', '0001-01-01', '9999-12-31', '2100-01-01'),
    limit: fc.constantFrom('0', '1', '50', '500', '501', '-1', '1.5', '1e3', ' 5', 'abc', '99999999999999999999'),
    offset: fc.constantFrom('0', '1', '1000000', '1000001', '-1', '1.5', 'x'),
    cursor: fc.oneof(cursorValue, fc.string({ maxLength: 300 })),
    interval: fc.constantFrom('day', 'week', 'month', 'DAY', ''),
    status: fc.constantFrom('pending', 'approved', 'paid', 'revoked', 'attributed', 'held', 'delivered', 'failed', 'nope', ''),
    sort: fc.constantFrom('clicks', 'visitors', 'signups', 'purchases', 'conversionRate', 'nope', 'id; drop table x'),
    order: fc.constantFrom('asc', 'desc', 'up'),
    reason: fc.constantFrom('self_referral', 'unknown_code', 'NOPE', 'a'.repeat(65)),
    subject: fc.constantFrom('click', 'attribution', 'conversion', 'reward', 'nope'),
    outcome: fc.constantFrom('accepted', 'rejected', 'held', 'nope'),
  }),
);

/** Strings for URLs: anything, but short enough that the request line stays under Node's header limit. */
const urlString = weirdString.filter((value) => Buffer.byteLength(value) <= 600);

function queryString(endpoint: Endpoint, values: Map<string, string[]>): fc.Arbitrary<string> {
  const name = fc.oneof(
    { weight: 4, arbitrary: endpoint.query.length ? fc.constantFrom(...endpoint.query) : urlString },
    { weight: 1, arbitrary: urlString },
  );
  const pair = name.chain((key) => {
    const known = queryValues.get(key);
    const fromFixtures = values.get(key);
    const value = fc.oneof(
      { weight: 3, arbitrary: known ?? urlString },
      { weight: 2, arbitrary: fromFixtures?.length ? fc.constantFrom(...fromFixtures) : urlString },
      { weight: 2, arbitrary: urlString },
    );
    return value.map((v) => [key, v] as const);
  });
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant('') },
    {
      weight: 6,
      arbitrary: fc
        .array(pair, { maxLength: 4 })
        .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')}` : '')),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(pair, { maxLength: 3 })
        .map((pairs) => `?${pairs.map(([k, v]) => `${looseEncode(k)}=${looseEncode(v)}`).join('&')}`),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '?',
        '?&&',
        '?=',
        '?a[b]=c&a[c]=d',
        '?limit=1&limit=2',
        '?from[]=1',
        '?%',
        '?%E0%A4%A',
        `?x=${'y'.repeat(4000)}`,
      ),
    },
  );
}

// ---------------------------------------------------------------------------------
// Sending raw requests (node:http: exact paths, any header, chunked bodies)
// ---------------------------------------------------------------------------------

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  chunked: boolean;
}

interface FuzzReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function send(baseUrl: string, req: FuzzRequest): Promise<FuzzReply> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    const payload = req.body === undefined ? undefined : Buffer.from(req.body, 'utf8');
    // An over-limit body is refused before it is read: its connection is not reused (see the dedicated test below).
    if (payload && payload.length > BODY_LIMIT) headers.connection = 'close';
    if (payload) {
      if (req.chunked) headers['transfer-encoding'] = 'chunked';
      else headers['content-length'] = String(payload.length);
    }
    const outgoing = httpRequest({ hostname, port, path: req.path, method: req.method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    outgoing.on('error', reject);
    if (payload) {
      // Chunked: a few pieces, so the server cannot know the length up front.
      if (req.chunked) for (let i = 0; i < payload.length; i += 16_384) outgoing.write(payload.subarray(i, i + 16_384));
      else outgoing.write(payload);
    }
    outgoing.end();
  });
}

const describeRequest = (req: FuzzRequest) =>
  `${req.method} ${req.path.length > 300 ? `${req.path.slice(0, 300)}…` : req.path}\n` +
  `headers: ${JSON.stringify(Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, v.length > 120 ? `${v.slice(0, 120)}…(${v.length})` : v])))}\n` +
  `body (${req.body?.length ?? 0} chars${req.chunked ? ', chunked' : ''}): ${req.body === undefined ? '(none)' : JSON.stringify(req.body.slice(0, 400))}`;

/** fast-check prints counterexamples with this: short, and enough to replay. */
const withDescription = (req: FuzzRequest): FuzzRequest =>
  Object.defineProperty(req, fc.toStringMethod, { value: () => describeRequest(req), enumerable: false });

/** The answer's contract: never a 5xx; a 4xx is the JSON error shape. */
function checkReply(req: FuzzRequest, reply: FuzzReply): void {
  const fail = (why: string) => {
    throw new Error(`${why}\n--- request\n${describeRequest(req)}\n--- response ${reply.status}\n${reply.body.slice(0, 500)}`);
  };
  if (reply.status >= 500) fail(`answered ${reply.status}`);
  if (reply.status < 100) fail('no status');
  const type = String(reply.headers['content-type'] ?? '');
  // An unsubscribe link is followed by people: a changed token is a 400 HTML page, not JSON.
  if (reply.status === 400 && req.path.startsWith('/v1/emails/unsubscribe') && type.startsWith('text/html')) return;
  // People follow referral links: an unknown code is a 404 HTML page, not JSON.
  if (reply.status === 404 && req.path.startsWith('/r/') && type.startsWith('text/html')) return;
  // The portal page is read by people too: an expired or forged link is a 401 HTML page.
  if (reply.status === 401 && req.path.startsWith('/portal/') && type.startsWith('text/html')) return;
  if (reply.status >= 400) {
    if (!type.includes('application/json')) fail(`a ${reply.status} that is not JSON (${type})`);
    let body: any;
    try {
      body = JSON.parse(reply.body);
    } catch {
      fail('a 4xx body that does not parse');
      return;
    }
    const keys = body && typeof body === 'object' ? Object.keys(body) : [];
    if (keys.length !== 1 || keys[0] !== 'error') fail('a 4xx body that is not { error }');
    const error = body.error;
    if (typeof error?.code !== 'string' || !/^[a-z][a-z0-9_]*$/.test(error.code)) fail('error.code is not snake_case');
    if (typeof error.message !== 'string' || !error.message) fail('error.message is missing');
    if (Object.keys(error).some((key) => !['code', 'message', 'fields'].includes(key))) fail('unexpected keys in error');
    if (error.fields !== undefined && (typeof error.fields !== 'object' || Object.values(error.fields).some((v) => typeof v !== 'string')))
      fail('error.fields is not a map of strings');
    if (/\bat .+:\d+:\d+|node_modules|SELECT |select .* from /.test(reply.body)) fail('the error leaks internals');
    return;
  }
  if (type.includes('application/json') && reply.body) {
    try {
      JSON.parse(reply.body);
    } catch {
      fail('a JSON success that does not parse');
    }
  }
}

// ---------------------------------------------------------------------------------

interface Fixtures {
  program: ProgramFixture;
  other: ProgramFixture;
  externalIds: string[];
  codes: string[];
  rewardIds: string[];
  eventIds: string[];
  vids: string[];
}

async function buildFixtures(api: TestApp): Promise<Fixtures> {
  const settings = {
    rewardRules: [
      { id: 'signup', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
      { id: 'pct', on: 'purchase', to: 'both', reward: { kind: 'cash', percent: 10 } },
    ],
    stripe: { webhookSecret: STRIPE_SECRET },
  };
  const program = await buildProgram(api, { settings });
  const other = await buildProgram(api, { settings: { ...settings, stripe: { webhookSecret: `${STRIPE_SECRET}_other` } } });
  const externalIds: string[] = [];
  const codes: string[] = [];
  const eventIds: string[] = [];
  const vids: string[] = [];
  for (const fixture of [program, other]) {
    const alice = await buildParticipant(api, fixture, { externalId: `alice ${uniq()} zoë/ü?#`, email: `${uniq()}@example.com` });
    externalIds.push(alice.externalId);
    codes.push(alice.code);
    for (let i = 0; i < 2; i++) {
      const vid = newVid();
      vids.push(vid);
      await api.post('/v1/clicks', { key: fixture.publishable, code: alice.code, vid });
      const signup = uniq('signup-');
      const buyer = uniq('buyer-');
      const order = uniq('order-');
      eventIds.push(signup, order);
      externalIds.push(buyer);
      expect(
        (
          await api.post(
            '/v1/conversions',
            { type: 'signup', eventId: signup, externalId: buyer, referral: { code: alice.code, vid } },
            { auth: fixture.secret },
          )
        ).status,
      ).toBe(200);
      expect(
        (
          await api.post(
            '/v1/conversions',
            { type: 'purchase', eventId: order, externalId: buyer, amount: 5000, currency: 'USD' },
            { auth: fixture.secret },
          )
        ).status,
      ).toBe(200);
    }
  }
  const rewardIds: string[] = [];
  for (const fixture of [program, other]) {
    const rewards = await api.get('/v1/rewards', { auth: fixture.secret });
    rewardIds.push(...(rewards.body.data as Array<{ id: string }>).map((reward) => reward.id));
  }
  expect(rewardIds.length).toBeGreaterThan(4);
  return { program, other, externalIds, codes, rewardIds, eventIds, vids };
}

function requestFor(endpoint: Endpoint, f: Fixtures): fc.Arbitrary<FuzzRequest> {
  const { program, other } = f;
  const pick = <T>(values: T[]) => fc.constantFrom(...values);

  // Path parameters: real ids of both programs, or anything.
  const paramValue = (name: string): fc.Arbitrary<string> => {
    const real = new Map<string, string[]>([
      ['externalId', f.externalIds],
      ['code', f.codes],
      ['id', endpoint.path.startsWith('/v1/keys') ? [] : f.rewardIds], // never real key ids: the fuzz must not lock itself out
      ['programSlug', [program.slug, other.slug]],
    ]);
    const values = real.get(name) ?? [];
    return fc.oneof(
      { weight: values.length ? 4 : 0, arbitrary: values.length ? pick(values) : fc.constant('x') },
      { weight: 2, arbitrary: fc.uuid() },
      { weight: 4, arbitrary: urlString },
    );
  };
  const params = [...endpoint.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
  const path = fc
    .tuple(
      fc.tuple(...params.map((name) => fc.tuple(paramValue(name), fc.boolean()))),
      queryString(
        endpoint,
        new Map([
          ['participant', f.externalIds],
          ['referrer', f.externalIds],
        ]),
      ),
    )
    .map(([values, query]) => {
      let i = 0;
      const pathname = endpoint.path.replace(/\{\w+\}/g, () => {
        const [value, loose] = values[i++] as [string, boolean];
        return loose ? looseEncode(value) : encode(value);
      });
      return pathname + query;
    });

  const validAuth: Record<Endpoint['auth'], string | undefined> = {
    admin: `Bearer ${ADMIN_TOKEN}`,
    secret: `Bearer ${program.secret}`,
    publishable: undefined,
    none: undefined,
  };
  const authorization = fc.oneof(
    { weight: 10, arbitrary: fc.constant(validAuth[endpoint.auth]) },
    {
      weight: 4,
      arbitrary: fc.constantFrom<string | undefined>(
        undefined,
        'Bearer',
        'Bearer ',
        `Bearer ${program.publishable}`,
        `Bearer ${other.secret}`,
        `Bearer ${ADMIN_TOKEN}`,
        `bearer ${program.secret}`,
        `Bearer ${program.secret} extra`,
        `Bearer ${program.secret.slice(0, -1)}`,
        `Bearer ${program.secret}x`,
        `Basic ${Buffer.from('user:pass').toString('base64')}`,
        `Bearer sk_${'A'.repeat(32)}`,
        `Bearer pk_${'A'.repeat(32)}`,
        `Bearer sk_${'x'.repeat(5000)}`,
        `Bearer ${'x'.repeat(5000)}`,
      ),
    },
    { weight: 1, arbitrary: headerValue.map((value) => `Bearer ${value}`) },
    { weight: 1, arbitrary: headerValue },
  );
  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('application/json', 'text/plain;charset=UTF-8') },
    {
      weight: 3,
      arbitrary: fc.constantFrom<string | undefined>(
        undefined,
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json; charset=latin1',
        'application/csp-report',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'text/html',
        'foo',
        '',
        '*/*',
        'application/json, text/plain',
        'application/json; boundary=',
      ),
    },
    { weight: 1, arbitrary: headerValue },
  );

  const sample = sampleBody(endpoint, f);
  const jsonBody = fc.oneof(
    { weight: 6, arbitrary: mutate(sample).map((value) => JSON.stringify(value)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: deepJson },
    // A deep value in place of one field of an otherwise valid body.
    {
      weight: 1,
      arbitrary: fc.tuple(deepJson, fc.constantFrom(...fieldsOf(sample))).map(([deep, key]) => {
        const text = JSON.stringify({ ...(sample as object), [key]: '__DEEP__' });
        return text.replace('"__DEEP__"', deep);
      }),
    },
    // A huge string right around the limit.
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: BODY_LIMIT - 40, max: BODY_LIMIT + 40 })
        .map((size) => JSON.stringify({ ...(sample as object), pad: 'p'.repeat(size) }).slice(0, size)),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: BODY_LIMIT - 40, max: BODY_LIMIT + 40 })
        .map((size) => `{"pad":"${'p'.repeat(Math.max(0, size - 10))}"}`),
    },
    // Not JSON at all.
    { weight: 1, arbitrary: weirdString },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '{',
        '{"a":',
        '[1,]',
        '{"a":1}garbage',
        'null',
        '"string"',
        '1',
        'true',
        '\u0000',
        '\ufeff{}',
        '{"__proto__":{"admin":true}}',
      ),
    },
  );
  const body =
    endpoint.hasBody || endpoint.method !== 'GET'
      ? fc.oneof({ weight: 10, arbitrary: jsonBody }, { weight: 1, arbitrary: fc.constant(undefined) })
      : fc.oneof({ weight: 10, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: jsonBody });

  const extras = fc.record(
    {
      'idempotency-key': fc.oneof(
        fc.string({ minLength: 1, maxLength: 40, unit: fc.constantFrom(...'abcdef0123456789-') }),
        fc.constant('k'.repeat(256)),
      ),
      origin: fc.constantFrom('https://shop.example', 'https://evil.example', 'null', 'not a url'),
      'x-forwarded-for': fc.constantFrom('203.0.113.9', '::1', 'garbage', '1.2.3.4, 5.6.7.8', ''),
      'stripe-signature': fc.oneof(headerValue, fc.constant('t=1,v1=abc')),
      'accept-encoding': fc.constantFrom('gzip', 'identity', '*', 'br;q=0'),
      'if-none-match': headerValue,
    },
    { requiredKeys: [] },
  );

  return fc
    .record({ path, authorization, contentType, body, extras, chunked: fc.boolean(), signStripe: fc.boolean() })
    .map(({ path: requestPath, authorization: auth, contentType: type, body: text, extras: more, chunked, signStripe }) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(more)) if (value !== undefined) headers[name] = value;
      if (auth !== undefined) headers.authorization = auth;
      if (text !== undefined && type !== undefined) headers['content-type'] = type;
      // Stripe: most events carry a valid signature, so the handlers themselves are fuzzed.
      if (endpoint.path.includes('stripe') && signStripe && text !== undefined && text.length <= BODY_LIMIT) {
        headers['stripe-signature'] = Stripe.webhooks.generateTestHeaderString({ payload: text, secret: STRIPE_SECRET });
      }
      return withDescription({ method: endpoint.method, path: requestPath, headers, body: text, chunked });
    });
}

const fieldsOf = (sample: unknown) => {
  const keys = sample && typeof sample === 'object' ? Object.keys(sample) : [];
  return keys.length ? keys : ['x'];
};

/** A valid body for each endpoint that takes one (the fuzz mutates it). */
function sampleBody(endpoint: Endpoint, f: Fixtures): unknown {
  const code = f.codes[0];
  const vid = f.vids[0];
  const key = `${endpoint.method} ${endpoint.path}`;
  switch (key) {
    case 'POST /v1/programs':
      return {
        name: 'Fuzz',
        origins: ['https://a.example'],
        landingUrl: 'https://a.example/',
        settings: {
          cookieDays: 30,
          rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 1, currency: 'USD' } }],
        },
      };
    case 'PATCH /v1/program':
      return {
        name: 'Fuzzed',
        settings: {
          cookieDays: 30,
          attribution: 'last',
          windowDays: 30,
          fraud: { velocityMax: 5 },
          rewardRules: [{ id: 'r', on: 'purchase', to: 'both', reward: { kind: 'cash', percent: 5 }, when: { minAmount: 10 } }],
        },
      };
    case 'POST /v1/participants':
      return { externalId: uniq('fz-'), email: 'fuzz@example.com', name: 'Fuzz', code: uniq('FZ') };
    case 'POST /v1/clicks':
      return { key: f.program.publishable, code, vid, url: 'https://shop.example/?ref=x', referrer: 'https://blog.example/' };
    case 'POST /v1/events':
      return {
        key: f.program.publishable,
        type: 'purchase',
        eventId: uniq('ev-'),
        vid,
        code,
        user: { id: uniq('u-'), email: 'u@example.com' },
        order: { id: uniq('o-'), amount: 1000, currency: 'usd' },
      };
    case 'POST /v1/conversions':
      return {
        type: 'purchase',
        eventId: uniq('cv-'),
        externalId: f.externalIds[1],
        email: 'c@example.com',
        referral: { code, vid },
        amount: 1200,
        currency: 'EUR',
      };
    case 'POST /v1/refunds':
      return { eventId: uniq('rf-'), purchaseEventId: f.eventIds[1], amount: 100 };
    case 'POST /v1/rewards/{id}/approve':
      return { reason: 'looks fine' };
    case 'POST /v1/keys':
      return { kind: 'publishable' };
    case 'POST /v1/integrations/stripe/{programSlug}':
      return {
        id: `evt_${uniq()}`,
        type: 'invoice.paid',
        data: {
          object: {
            id: `in_${uniq()}`,
            customer: 'cus_1',
            amount_paid: 1999,
            currency: 'usd',
            customer_email: 'Payer@Example.com',
            payment_intent: 'pi_1',
            charge: 'ch_1',
            metadata: { externalId: f.externalIds[1], referral_code: code },
            parent: { subscription_details: { metadata: { externalId: 'sub-user' } } },
            payments: { data: [{ payment: { payment_intent: 'pi_2', charge: 'ch_2' } }] },
            // checkout.session and charge fields, for when the type is mutated
            mode: 'payment',
            amount_total: 1999,
            client_reference_id: 'ref-user',
            invoice: 'in_1',
            amount_refunded: 100,
          },
        },
      };
    default:
      return {};
  }
}

// The Stripe event type is worth mutating on its own: every handled type, with the same object.
const STRIPE_TYPES = [
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'invoice.paid',
  'charge.refunded',
  'customer.created',
];

describe.each(DATABASES)('fuzz (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let fixtures: Fixtures;

  useTestApp(kind, (suite) => ({ db, api } = suite), { env: { TRUST_PROXY: 'true' } });
  beforeAll(async () => {
    fixtures = await buildFixtures(api);
  });

  it('fuzzes exactly the endpoints the live OpenAPI document lists', async () => {
    const reply = await api.get('/v1/openapi.json');
    expect(reply.status).toBe(200);
    const live = Object.entries(reply.body.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(live.sort()).toEqual(ENDPOINTS.map((e) => `${e.method} ${e.path}`).sort());
    expect(ENDPOINTS.length).toBeGreaterThanOrEqual(25);
  });

  it.each(ENDPOINTS.map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint] as const))(
    '%s: never a 5xx, 4xx always the JSON error shape',
    async (_name, endpoint) => {
      let arbitrary = requestFor(endpoint, fixtures);
      if (endpoint.path.includes('stripe')) {
        // Half the events get a real event type in a mutated envelope.
        arbitrary = fc.oneof(
          arbitrary,
          fc
            .tuple(arbitrary, fc.constantFrom(...STRIPE_TYPES), mutate((sampleBody(endpoint, fixtures) as { data: unknown }).data))
            .map(([req, type, data]) => {
              const text = JSON.stringify({ id: `evt_${uniq()}`, type, data });
              return withDescription({
                ...req,
                body: text,
                headers: {
                  ...req.headers,
                  'content-type': 'application/json',
                  'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: text, secret: STRIPE_SECRET }),
                },
              });
            }),
        );
      }
      await fc.assert(
        fc.asyncProperty(arbitrary, async (req) => {
          let reply: FuzzReply;
          try {
            reply = await send(api.url, req);
          } catch (error) {
            throw new Error(`the connection failed (${String(error)})\n--- request\n${describeRequest(req)}`);
          }
          checkReply(req, reply);
        }),
        { numRuns: RUNS[kind] ?? 30, seed: SEED, endOnFailure: true },
      );
    },
  );

  it('is still up, ready and consistent afterwards', async () => {
    expect((await api.get('/v1/health')).status).toBe(200);
    expect((await api.get('/v1/ready')).status).toBe(200);
    const program = await api.get('/v1/program', { auth: fixtures.program.secret });
    expect(program.status).toBe(200);
    // The browser key still works (a fuzzed DELETE never hit a real key).
    const click = await api.post('/v1/clicks', { key: fixtures.program.publishable, code: fixtures.codes[0], vid: newVid() });
    expect(click.status).toBe(202);
  });
});

// ---------------------------------------------------------------------------------
// What the fuzz found, pinned as plain cases (each one failed before its fix).
// ---------------------------------------------------------------------------------

/** One raw exchange on a fresh connection: the status, headers and body of the first answer. */
async function once(baseUrl: string, req: Omit<FuzzRequest, 'chunked'> & { chunked?: boolean }): Promise<FuzzReply> {
  const conn = new Agent({ keepAlive: false });
  const { hostname, port } = new URL(baseUrl);
  try {
    return await new Promise<FuzzReply>((resolve, reject) => {
      const headers: Record<string, string> = { ...req.headers };
      const payload = req.body === undefined ? undefined : Buffer.from(req.body, 'utf8');
      if (payload) headers[req.chunked ? 'transfer-encoding' : 'content-length'] = req.chunked ? 'chunked' : String(payload.length);
      const outgoing = httpRequest({ hostname, port, path: req.path, method: req.method, headers, agent: conn }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      outgoing.on('error', reject);
      if (payload) outgoing.write(payload);
      outgoing.end();
    });
  } finally {
    conn.destroy();
  }
}

const pagingCursor = (key: unknown) => Buffer.from(JSON.stringify(key)).toString('base64url');

describe.each(DATABASES)('cases found by the fuzz (%s)', (kind) => {
  let api: TestApp;
  let program: ProgramFixture;

  useTestApp(kind, (suite) => ({ api } = suite));
  beforeAll(async () => {
    program = await buildProgram(api, { settings: { stripe: { webhookSecret: STRIPE_SECRET } } });
  });

  const expectClientError = (reply: FuzzReply, what: string) => {
    const req = { method: 'GET', path: what, headers: {}, body: undefined, chunked: false };
    checkReply(req, reply);
    expect(reply.status, `${what}: ${reply.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
  };

  // idempotency.ts hashes JSON.stringify(body): a body nested ~5000 deep (10 KB) overflows the stack.
  it.each(['/v1/participants', '/v1/conversions', '/v1/refunds'])(
    'POST %s with an Idempotency-Key and a deeply nested body is a 4xx, not a 500',
    async (path) => {
      for (const body of ['['.repeat(20_000) + ']'.repeat(20_000), `{"externalId":${'['.repeat(20_000)}${']'.repeat(20_000)}}`]) {
        const reply = await once(api.url, {
          method: 'POST',
          path,
          headers: { authorization: `Bearer ${program.secret}`, 'content-type': 'application/json', 'idempotency-key': uniq('deep-') },
          body,
        });
        expectClientError(reply, `POST ${path} (depth 20000, Idempotency-Key)`);
      }
    },
  );

  // router.allowedMethods({ throw: false }) answers 405 in plain text, outside the error middleware.
  it.each([
    ['GET', '/v1/participants'],
    ['GET', '/v1/participants/'],
    ['DELETE', '/v1/keys'],
    ['PUT', '/v1/program'],
    ['GET', '/v1/clicks'],
    ['POST', '/v1/health'],
  ])('%s %s (a method the path does not take) answers the JSON error shape', async (method, path) => {
    const reply = await once(api.url, { method, path, headers: { authorization: `Bearer ${program.secret}` }, body: undefined });
    expectClientError(reply, `${method} ${path}`);
    expect([404, 405]).toContain(reply.status);
  });

  // Forged paging cursors: a bad date, a bad id, or another table's kind of id never reach SQL.
  it.each([
    ['/v1/referrals', ['2025-01-01', 'not-a-uuid']],
    ['/v1/referrals', ['-271821-04-20T00:00:00.000Z', '00000000-0000-0000-0000-000000000000']],
    ['/v1/rewards', ['2025-01-01', 5]],
    ['/v1/decisions', ['2025-01-01', 'x']],
    ['/v1/decisions', ['2025-01-01', 1e20]],
    // Another table's kind of id: decisions are numbered, the others are uuids.
    ['/v1/decisions', ['2025-01-01T00:00:00.000Z', '2a73aa30-d20f-4af0-b071-96f9d1e3d3d8']],
    ['/v1/referrals', ['2025-01-01T00:00:00.000Z', 42]],
    ['/v1/webhooks/deliveries', ['1', 9_223_372_036_854_776_000]],
  ] as const)('GET %s with a forged cursor %j is 400 invalid_cursor', async (path, key) => {
    const reply = await once(api.url, {
      method: 'GET',
      path: `${path}?cursor=${pagingCursor(key)}`,
      headers: { authorization: `Bearer ${program.secret}` },
      body: undefined,
    });
    expectClientError(reply, `GET ${path} cursor ${JSON.stringify(key)}`);
    expect(reply.status).toBe(400);
  });

  // Dates JavaScript accepts but PostgreSQL does not (year 0), reached through the default range too.
  it.each([
    '/v1/reports/summary?to=0001-01-01',
    '/v1/reports/timeseries?to=0001-01-01',
    '/v1/reports/referrers?to=0001-01-01',
    '/v1/reports/summary?from=0000-12-31&to=0001-01-01',
    '/v1/exports/clicks.csv?from=0000-01-01',
    '/v1/exports/referrals.csv?to=0000-01-01',
    '/v1/exports/rewards.csv?from=0000-06-01&to=0000-06-02',
  ])('GET %s answers in full: a 4xx (or a complete 200), never a 5xx or a cut connection', async (path) => {
    let reply: FuzzReply;
    try {
      reply = await once(api.url, { method: 'GET', path, headers: { authorization: `Bearer ${program.secret}` }, body: undefined });
    } catch (error) {
      throw new Error(`GET ${path}: the connection was cut (${String(error)})`);
    }
    checkReply({ method: 'GET', path, headers: {}, body: undefined, chunked: false }, reply);
  });

  // A signed event is trusted to be well formed; a payload without data, or with values our columns cannot hold, is a 500.
  it.each([
    ['no data', { id: 'evt_nodata', type: 'invoice.paid' }],
    ['data null', { id: 'evt_datanull', type: 'checkout.session.completed', data: null }],
    ['a null event', null],
    [
      'an externalId over 255 characters',
      {
        id: 'evt_long',
        type: 'invoice.paid',
        data: { object: { id: 'in_long', amount_paid: 100, currency: 'usd', metadata: { externalId: 'x'.repeat(300) } } },
      },
    ],
    [
      'an invoice id over 255 characters',
      {
        id: 'evt_longid',
        type: 'invoice.paid',
        data: { object: { id: 'i'.repeat(300), amount_paid: 100, currency: 'usd', metadata: { externalId: 'ok-user' } } },
      },
    ],
    [
      'a currency that is not 3 letters',
      {
        id: 'evt_cur',
        type: 'invoice.paid',
        data: { object: { id: 'in_cur', amount_paid: 100, currency: 'dollars', metadata: { externalId: 'ok-user' } } },
      },
    ],
  ])('a signed Stripe event with %s is answered without a 5xx', async (_label, event) => {
    const payload = JSON.stringify(event);
    const reply = await once(api.url, {
      method: 'POST',
      path: `/v1/integrations/stripe/${program.slug}`,
      headers: {
        'content-type': 'application/json',
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: STRIPE_SECRET }),
      },
      body: payload,
    });
    checkReply({ method: 'POST', path: 'stripe', headers: {}, body: payload, chunked: false }, reply);
  });

  // raw-body stops reading at the limit and the 413 keeps the connection alive: the unread rest wedges it.
  it('an over-limit chunked body is refused with 413 without wedging the kept-alive connection', async () => {
    const { hostname, port } = new URL(api.url);
    const socket = createConnection({ host: hostname, port: Number(port) });
    let received = '';
    let closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    try {
      socket.write(`POST /v1/clicks HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const body = Buffer.from(JSON.stringify({ key: program.publishable, pad: '𝒇𒊇ᨍ🧸'.repeat(9000) }));
      for (let i = 0; i < body.length; i += 16_384) {
        const part = body.subarray(i, i + 16_384);
        socket.write(`${part.length.toString(16)}\r\n`);
        socket.write(part);
        socket.write('\r\n');
      }
      socket.write('0\r\n\r\n');
      const deadline = Date.now() + 5000;
      while (!/\r\n\r\n\{.*\}\}/s.test(received) && !closed && Date.now() < deadline) await sleep(20);
      expect(received).toMatch(/^HTTP\/1\.1 413 /);
      expect(received).toContain('"payload_too_large"');
      if (/\r\nconnection: *close\r\n/i.test(received)) return; // refused and closed: fine
      // Kept alive: the next request on this connection must be answered promptly.
      const before = received.length;
      socket.write(`GET /v1/health HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
      const until = Date.now() + 2000;
      while (!received.slice(before).includes('"status":"ok"') && Date.now() < until) await sleep(20);
      expect(received.slice(before), 'the next request on the kept-alive connection was not answered within 2 s').toMatch(
        /^HTTP\/1\.1 200 /,
      );
    } finally {
      socket.destroy();
    }
  });
});
