/**
 * CSV exports through the real app, on every database: each file parsed back with a
 * strict RFC 4180 reader and compared with the fixture built through the API
 * (formula-looking names, externalIds, codes, event ids, URLs; quotes, commas and
 * line breaks inside cells; negative clawback amounts), the from/to filters, tenant
 * isolation, and a large export streamed incrementally with flat memory.
 */
import { randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RewardResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES, type TestDb } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, type ProgramFixture } from '../helpers/factories.ts';
import { click, conversion, expectOk, refund, transition } from '../helpers/steps.ts';

const MB = 1024 * 1024;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const today = () => new Date().toISOString().slice(0, 10);

/**
 * A strict RFC 4180 reader: records end with CRLF (the last one too), a field is
 * quoted only from its first character, `""` is a quote inside a quoted field, and a
 * bare quote, CR or LF outside quotes is an error.
 */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`CSV: ${what} at offset ${i}: ${JSON.stringify(text.slice(Math.max(0, i - 20), i + 20))}`);
  };
  while (i < text.length) {
    if (text[i] === '"' && field === '') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated quoted field');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += text[i];
        i++;
      }
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') fail('text after a closing quote');
      // An empty quoted field ("") stays distinguishable from the start of the next one.
      if (field === '') field = '\u0000empty';
      continue;
    }
    const ch = text[i] as string;
    if (ch === ',') {
      record.push(field === '\u0000empty' ? '' : field);
      field = '';
      i++;
    } else if (ch === '\r') {
      if (text[i + 1] !== '\n') fail('bare CR');
      record.push(field === '\u0000empty' ? '' : field);
      records.push(record);
      record = [];
      field = '';
      i += 2;
    } else if (ch === '\n' || ch === '"') {
      fail(`bare ${JSON.stringify(ch)}`);
    } else {
      field += ch;
      i++;
    }
  }
  if (field !== '' || record.length) fail('missing CRLF after the last record');
  return records;
}

/** What a spreadsheet-safe export must make of a text cell. */
const safe = (value: string | null | undefined) => (value == null ? '' : /^(?:[\t\r\n]|\s*[=+\-@])/.test(value) ? `'${value}` : value);

/** v8's gc(), for measuring what stays alive; undefined if the runtime refuses. */
function exposeGc(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

const REFERRALS_HEADER = [
  'referrer_external_id',
  'referrer_email',
  'referrer_name',
  'referred_external_id',
  'referred_email',
  'referred_name',
  'code',
  'status',
  'reason',
  'verified',
  'created_at',
];
const REWARDS_HEADER = [
  'id',
  'participant_external_id',
  'participant_email',
  'rule',
  'kind',
  'amount',
  'currency',
  'coupon',
  'status',
  'available_at',
  'event_id',
  'reverses',
  'created_at',
];
const CLICKS_HEADER = ['code', 'referrer_external_id', 'visitor_id', 'url', 'referrer_url', 'created_at'];

describe.each(DATABASES)('exports (%s)', (kind) => {
  let t: TestDb;
  let api: TestApp;
  const run = randomBytes(4).toString('hex');

  useTestApp(kind, (suite) => ({ testDb: t, api } = suite));

  /** GET an export: status, headers and the parsed records. */
  async function csv(program: ProgramFixture, file: string, query = '') {
    const reply = await api.get(`/v1/exports/${file}${query}`, { auth: program.secret });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(reply.headers.get('content-disposition')).toBe(`attachment; filename="${file}"`);
    return { text: reply.text, records: parseCsv(reply.text) };
  }
  const rowsOf = async (program: ProgramFixture, file: string, query = '') => (await csv(program, file, query)).records.slice(1);

  // People whose text a spreadsheet would otherwise run.
  const R1 = {
    externalId: `=HYPERLINK("http://evil.example/?x=1","click me")-${run}`,
    email: `r1-${run}@example.com`,
    name: 'Smith, "Bob"\r\nJunior',
  };
  const R2 = { externalId: `+1-${run}`, email: `-r2-${run}@example.com`, name: '-x', code: `-r2${run}` };
  const R3 = { externalId: `@x-${run}`, name: '@SUM(A1:A9)' };
  const U1 = { externalId: `u1,"quoted"-${run}`, email: `u1-${run}@example.com`, name: 'Tab\tinside' };
  const U2 = { externalId: `\t=tab-${run}` };
  const U3 = { externalId: `\rcr-${run}`, email: `+u3-${run}@example.com`, name: '=1+2' };
  const U4 = { externalId: `u4-${run}`, name: 'Zoë "Z" Ünïcode, Jr.' };
  const COUPON = '=HYPERLINK("http://evil.example")';
  const RULES = [
    { id: '-signup', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 500, currency: 'USD' } },
    { id: 'welcome', on: 'signup', to: 'referee', reward: { kind: 'coupon', coupon: COUPON } },
    { id: 'pct', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
  ];

  let program: ProgramFixture;
  let codes: { R1: string; R2: string; R3: string };
  const rewards: RewardResponse[] = [];
  let fixtureStart: number;
  let fixtureEnd: number;
  const vids = { v1: `-vid-${run}`, v2: `vid2${run}`, v3: `vid3${run}`, old1: `old1${run}`, old2: `old2${run}`, old3: `old3${run}` };
  const URLS = {
    v1: `=cmd|' /C calc'!A0`,
    v2: 'https://shop.example/?a=1,b="2"\r\nnext line',
    v3: `https://shop.example/pricing?ref=${run}`,
  };

  beforeAll(async () => {
    fixtureStart = Date.now() - 1000;
    program = await buildProgram(api, { settings: { rewardRules: RULES } });
    const r1 = await buildParticipant(api, program, R1);
    const r2 = await buildParticipant(api, program, R2);
    const r3 = await buildParticipant(api, program, R3);
    codes = { R1: r1.code, R2: r2.code, R3: r3.code };
    expect(r2.code).toBe(R2.code);

    // Clicks, oldest first: a formula URL and referrer, quotes/commas/CRLF in a URL, a
    // redirect-link click (no visitor id), then three clicks moved to March 2025 below.
    await click(api, program, { code: codes.R1, vid: vids.v1, url: URLS.v1, referrer: '@evil' });
    await click(api, program, { code: codes.R2, vid: vids.v2, url: URLS.v2 });
    expect((await api.get(`/r/${codes.R3}`)).status).toBe(302);
    await click(api, program, { code: codes.R2, vid: vids.v3, url: URLS.v3, referrer: '+referrer' });
    for (const name of ['old1', 'old2', 'old3'] as const) await click(api, program, { code: codes.R2, vid: vids[name] });

    const signups: Array<[typeof U1 | typeof U2 | typeof U3 | typeof U4, string, string]> = [
      [U1, codes.R1, `+s1-${run}`],
      [U2, codes.R2, `s2-${run}`],
      [U3, codes.R3, `@s3-${run}`],
      [U4, codes.R2, `s4-${run}`],
    ];
    for (const [user, code, eventId] of signups) {
      const answer = await conversion(api, program, { type: 'signup', eventId, ...user, referral: { code } });
      expect(answer.attribution.status, user.externalId).toBe('attributed');
      expect(answer.rewards).toHaveLength(2);
      rewards.push(...answer.rewards);
    }
    // A purchase whose 10% reward is paid, then refunded in full: a −1000 clawback.
    const purchase = await conversion(api, program, {
      type: 'purchase',
      eventId: `=1+2-${run}`,
      externalId: U1.externalId,
      amount: 10_000,
      currency: 'USD',
    });
    const grant = purchase.rewards[0] as RewardResponse;
    expect(grant).toMatchObject({ amount: 1000, currency: 'USD', status: 'approved' });
    const paid = expectOk(await transition(api, program, grant.id, 'pay')).reward as RewardResponse;
    rewards.push(paid);
    const refunded = await refund(api, program, { eventId: `-refund-${run}`, purchaseEventId: `=1+2-${run}` });
    const clawback = (refunded.rewards as RewardResponse[]).find((reward) => reward.reverses === grant.id);
    expect(clawback).toMatchObject({ amount: -1000, status: 'approved' });
    rewards.push(clawback as RewardResponse);
    fixtureEnd = Date.now() + 1000;

    // Move three clicks, U4's referral and U4's coupon to March 2025 (exports filter on raw times).
    const moves: Array<[string, string]> = [
      [vids.old1, '2025-03-10T00:00:00.000Z'],
      [vids.old2, '2025-03-12T23:59:59.999Z'],
      [vids.old3, '2025-03-13T00:00:00.000Z'],
    ];
    for (const [vid, at] of moves)
      expect(
        await t
          .db('clicks')
          .where({ vid })
          .whereIn('code_id', t.db('codes').select('id').where({ program_id: program.id }))
          .update({ created_at: new Date(at) }),
      ).toBe(1);
    const u4 = await t.db('participants').where({ program_id: program.id, external_id: U4.externalId }).first('id');
    expect(
      await t
        .db('referrals')
        .where({ referred_id: u4.id })
        .update({ created_at: new Date('2025-03-11T12:00:00Z') }),
    ).toBe(1);
    const coupon = rewards.find((reward) => reward.participant === U4.externalId) as RewardResponse;
    expect(
      await t
        .db('rewards')
        .where({ id: coupon.id })
        .update({ created_at: new Date('2025-03-11T12:00:00Z') }),
    ).toBe(1);
    coupon.createdAt = '2025-03-11T12:00:00.000Z';
  });

  const inFixture = (iso: string) => ISO.test(iso) && Date.parse(iso) >= fixtureStart && Date.parse(iso) <= fixtureEnd;

  describe('clicks.csv', () => {
    it('has one row per stored click, oldest first, with formula-looking cells neutralised', async () => {
      const { text, records } = await csv(program, 'clicks.csv');
      expect(records[0]).toEqual(CLICKS_HEADER);
      const rows = records.slice(1);
      expect(rows.map((row) => row.slice(0, 5))).toEqual(
        [
          [codes.R2, safe(R2.externalId), vids.old1, '', ''],
          [codes.R2, safe(R2.externalId), vids.old2, '', ''],
          [codes.R2, safe(R2.externalId), vids.old3, '', ''],
          [codes.R1, safe(R1.externalId), `'${vids.v1}`, `'${URLS.v1}`, "'@evil"],
          [codes.R2, safe(R2.externalId), vids.v2, URLS.v2, ''],
          [codes.R3, safe(R3.externalId), '', '', ''],
          [codes.R2, safe(R2.externalId), vids.v3, URLS.v3, "'+referrer"],
        ].map(([code, ...rest]) => [safe(code), ...rest]),
      );
      expect(rows.map((row) => row[5])).toEqual([
        '2025-03-10T00:00:00.000Z',
        '2025-03-12T23:59:59.999Z',
        '2025-03-13T00:00:00.000Z',
        ...rows.slice(3).map((row) => row[5]),
      ]);
      for (const row of rows.slice(3)) expect(inFixture(row[5] as string), row[5]).toBe(true);
      // Spelled out, not only through safe(): the vanity code and the externalIds.
      expect(rows[0]?.[0]).toBe(`'-r2${run}`);
      expect(rows[0]?.[1]).toBe(`'+1-${run}`);
      expect(rows[3]?.[1]).toBe(`'=HYPERLINK("http://evil.example/?x=1","click me")-${run}`);
      // On the wire: quotes doubled, the CRLF kept inside quotes, the comma-free formula unquoted.
      expect(text).toContain(`"https://shop.example/?a=1,b=""2""\r\nnext line"`);
      expect(text).toContain(`,'=cmd|' /C calc'!A0,'@evil,`);
      expect(text.startsWith(`${CLICKS_HEADER.join(',')}\r\n`)).toBe(true);
    });

    it('filters on from/to as whole UTC days, both ends included', async () => {
      const visitors = async (query: string) => (await rowsOf(program, 'clicks.csv', query)).map((row) => row[2]);
      expect(await visitors('?from=2025-03-10&to=2025-03-12')).toEqual([vids.old1, vids.old2]);
      expect(await visitors('?from=2025-03-11&to=2025-03-12')).toEqual([vids.old2]);
      expect(await visitors('?from=2025-03-13&to=2025-03-13')).toEqual([vids.old3]);
      expect(await visitors('?to=2025-03-12')).toEqual([vids.old1, vids.old2]);
      expect(await visitors('?from=2025-03-11')).toEqual([vids.old2, vids.old3, `'${vids.v1}`, vids.v2, '', vids.v3]);
      expect(await visitors(`?from=${today()}&to=${today()}`)).toEqual([`'${vids.v1}`, vids.v2, '', vids.v3]);
      expect(await visitors('?from=2025-04-01&to=2025-04-30')).toEqual([]);
    });
  });

  describe('referrals.csv', () => {
    it('has referrer and referred externalId, email, name, code, status and time', async () => {
      const { text, records } = await csv(program, 'referrals.csv');
      expect(records[0]).toEqual(REFERRALS_HEADER);
      const rows = records.slice(1);
      const row = (
        referrer: { externalId: string; email?: string; name?: string },
        referred: { externalId: string; email?: string; name?: string },
        code: string,
      ) => [
        safe(referrer.externalId),
        safe(referrer.email),
        safe(referrer.name),
        safe(referred.externalId),
        safe(referred.email),
        safe(referred.name),
        safe(code),
        'attributed',
        '',
        'true',
      ];
      expect(rows.map((r) => r.slice(0, 10))).toEqual([
        row(R2, U4, codes.R2), // moved to 2025-03-11
        row(R1, U1, codes.R1),
        row(R2, U2, codes.R2),
        row(R3, U3, codes.R3),
      ]);
      expect(rows[0]?.[10]).toBe('2025-03-11T12:00:00.000Z');
      for (const r of rows.slice(1)) expect(inFixture(r[10] as string), r[10]).toBe(true);
      // Spelled out: leading tab and CR are neutralised (and the CR quoted), names keep their text.
      expect(rows[2]?.[3]).toBe(`'\t=tab-${run}`);
      expect(rows[3]?.[3]).toBe(`'\rcr-${run}`);
      expect(rows[3]?.[4]).toBe(`'+u3-${run}@example.com`);
      expect(rows[3]?.[5]).toBe("'=1+2");
      expect(rows[3]?.[2]).toBe("'@SUM(A1:A9)");
      expect(rows[1]?.[2]).toBe('Smith, "Bob"\r\nJunior');
      expect(rows[1]?.[5]).toBe('Tab\tinside');
      expect(rows[2]?.[2]).toBe("'-x");
      expect(rows[0]?.[5]).toBe('Zoë "Z" Ünïcode, Jr.');
      expect(text).toContain(`"'\rcr-${run}"`);
      expect(text).toContain(`"Smith, ""Bob""\r\nJunior"`);
    });

    it('filters on from/to', async () => {
      const referred = async (query: string) => (await rowsOf(program, 'referrals.csv', query)).map((row) => row[3]);
      expect(await referred('?from=2025-03-11&to=2025-03-11')).toEqual([U4.externalId]);
      expect(await referred('?from=2025-03-12&to=2025-03-31')).toEqual([]);
      expect(await referred(`?from=${today()}`)).toEqual([safe(U1.externalId), safe(U2.externalId), safe(U3.externalId)]);
      expect(await referred('?to=2025-03-11')).toEqual([U4.externalId]);
    });
  });

  describe('rewards.csv', () => {
    it('lists every ledger entry, amounts as plain numbers (clawbacks negative)', async () => {
      const { text, records } = await csv(program, 'rewards.csv');
      expect(records[0]).toEqual(REWARDS_HEADER);
      const emails = new Map<string, string | undefined>(
        [R1, R2, R3, U1, U2, U3, U4].map((p) => [p.externalId, (p as { email?: string }).email]),
      );
      const expected = rewards.map((reward) => [
        reward.id,
        safe(reward.participant),
        safe(emails.get(reward.participant)),
        safe(reward.rule),
        reward.kind,
        String(reward.amount),
        reward.currency ?? '',
        safe(reward.coupon),
        reward.status,
        reward.availableAt,
        safe(reward.eventId),
        reward.reverses ?? '',
        reward.createdAt,
      ]);
      expect(rewards).toHaveLength(10);
      const rows = records.slice(1);
      // Rewards granted in one transaction share a timestamp: compare as sets, then check the order.
      const sorted = (list: string[][]) => [...list].sort((a, b) => (a[0] as string).localeCompare(b[0] as string));
      expect(sorted(rows)).toEqual(sorted(expected));
      const times = rows.map((row) => Date.parse(row[12] as string));
      expect(times).toEqual([...times].sort((a, b) => a - b));

      const byRule = (rule: string) => rows.filter((row) => row[3] === rule);
      expect(byRule("'-signup").map((row) => row[5])).toEqual(['500', '500', '500', '500']);
      expect(byRule('welcome').map((row) => [row[5], row[6], row[7]])).toEqual(Array(4).fill(['0', '', `'${COUPON}`]));
      const [grant, clawback] = [...byRule('pct')].sort((a, b) => Number(b[5]) - Number(a[5]));
      expect(grant?.slice(5, 12)).toEqual(['1000', 'USD', '', 'paid', grant?.[9], `'=1+2-${run}`, '']);
      expect(clawback?.slice(5, 12)).toEqual(['-1000', 'USD', '', 'approved', clawback?.[9], `'-refund-${run}`, grant?.[0]]);
      // Numbers are not neutralised, and not quoted.
      expect(text).toContain(',-1000,USD,,approved,');
      expect(text).not.toContain("'-1000");
      expect(text).toContain(`,"'${COUPON.replace(/"/g, '""')}",`);
    });

    it('filters on from/to', async () => {
      const ids = async (query: string) => (await rowsOf(program, 'rewards.csv', query)).map((row) => row[0]);
      const coupon = rewards.find((reward) => reward.participant === U4.externalId) as RewardResponse;
      expect(await ids('?from=2025-03-11&to=2025-03-11')).toEqual([coupon.id]);
      expect((await ids(`?from=${today()}&to=${today()}`)).sort()).toEqual(
        rewards
          .filter((r) => r !== coupon)
          .map((r) => r.id)
          .sort(),
      );
      expect(await ids('?to=2025-03-10')).toEqual([]);
    });
  });

  describe('requests', () => {
    it('refuses bad dates and ranges', async () => {
      for (const [query, code] of [
        ['?from=abc', 'invalid_query'],
        ['?to=2026-13-01', 'invalid_query'],
        ['?from=2025-02-30', 'invalid_query'],
        ['?from=2025-03-12&to=2025-03-10', 'invalid_range'],
      ] as const) {
        const reply = await api.get(`/v1/exports/clicks.csv${query}`, { auth: program.secret });
        expect(reply.status, query).toBe(400);
        expect(reply.body.error.code, query).toBe(code);
      }
    });

    it('needs a secret key, knows only three files, and shows each program only its own rows', async () => {
      expect((await api.get('/v1/exports/clicks.csv')).status).toBe(401);
      expect((await api.get('/v1/exports/clicks.csv', { auth: program.publishable })).status).toBe(401);
      expect((await api.get('/v1/exports/participants.csv', { auth: program.secret })).status).toBe(404);
      expect((await api.get('/v1/exports/clicks.json', { auth: program.secret })).status).toBe(404);
      const other = await buildProgram(api);
      await buildParticipant(api, other);
      expect((await csv(other, 'clicks.csv')).text).toBe(`${CLICKS_HEADER.join(',')}\r\n`);
      expect((await csv(other, 'referrals.csv')).text).toBe(`${REFERRALS_HEADER.join(',')}\r\n`);
      expect((await csv(other, 'rewards.csv')).text).toBe(`${REWARDS_HEADER.join(',')}\r\n`);
    });
  });

  describe('paging', () => {
    it('pages through rows that share one timestamp without losing or repeating any', async () => {
      // Group-committed clicks share their transaction's timestamp; the export pages 2000 rows at a time.
      const tied = await buildProgram(api);
      const referrer = await buildParticipant(api, tied);
      const code = (await t.db('codes').where({ participant_id: referrer.id }).first('id')) as { id: string };
      const count = 4_321;
      await t.db.raw(
        `insert into clicks (code_id, vid, created_at)
         select ?, 'tie' || g, timestamptz '2025-05-05 05:05:05.123456+00' from generate_series(1, ?) g`,
        [code.id, count],
      );
      const rows = await rowsOf(tied, 'clicks.csv');
      expect(rows).toHaveLength(count);
      const seen = new Set(rows.map((row) => row[2]));
      expect(seen.size).toBe(count);
      expect(Array.from({ length: count }, (_, i) => `tie${i + 1}`).filter((vid) => !seen.has(vid))).toEqual([]);
      expect(new Set(rows.map((row) => row[5]))).toEqual(new Set(['2025-05-05T05:05:05.123Z']));
    });
  });

  describe('a large export', () => {
    // PGlite is single-threaded WASM: fewer, wider rows keep the run short and the volume similar.
    const ROWS = kind === 'postgres' ? 200_000 : 50_000;
    const PAD = kind === 'postgres' ? 250 : 1000;
    const HEAP_BOUND = 60 * MB;
    // PGlite runs in this process and hands each batch over as buffers outside the JS
    // heap, freed only when the GC gets to them: RSS grew 70–170 MB in runs where the
    // heap grew 26 MB and live memory 7 MB. The heap and live bounds are the ones that
    // prove streaming there; PostgreSQL's RSS (its own processes) stays flat.
    const RSS_BOUND = (kind === 'postgres' ? 100 : 250) * MB;
    const LIVE_BOUND = 20 * MB;

    it(`streams ${ROWS} clicks with flat memory`, async () => {
      const big = await buildProgram(api);
      const referrer = await buildParticipant(api, big);
      const code = (await t.db('codes').where({ participant_id: referrer.id }).first('id')) as { id: string };
      await t.db.raw(
        `insert into clicks (code_id, vid, url, created_at)
           select ?, 'big' || g, ? || g || '&pad=' || repeat('x', ?), timestamptz '2025-01-01' + g * interval '1 second'
             from generate_series(1, ?) g`,
        [code.id, `https://shop.example/landing?ref=${referrer.code}&i=`, PAD, ROWS],
      );
      await t.db.raw('analyze clicks');
      // The pooled keep-alive socket may have timed out during the long insert above.
      const open = () => fetch(`${api.url}/v1/exports/clicks.csv`, { headers: { authorization: `Bearer ${big.secret}` } });

      const gc = exposeGc();
      gc?.();
      const start = process.memoryUsage();
      let peakHeap = start.heapUsed;
      let peakRss = start.rss;
      let peakLive = start.heapUsed;
      const response = await open().catch(() => open());
      expect(response.status).toBe(200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      let newlines = 0;
      let bytes = 0;
      let chunks = 0;
      let head = '';
      let tail = new Uint8Array(0);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks++;
        bytes += value.length;
        for (let at = value.indexOf(10); at !== -1; at = value.indexOf(10, at + 1)) newlines++;
        if (head.length < 4096) head += new TextDecoder().decode(value.subarray(0, 4096));
        tail = value.length >= 4096 ? value.slice(-4096) : new Uint8Array([...tail.slice(-4096), ...value]);
        if (chunks % 16 === 0) {
          const now = process.memoryUsage();
          peakHeap = Math.max(peakHeap, now.heapUsed);
          peakRss = Math.max(peakRss, now.rss);
        }
        if (gc && chunks % 64 === 0) {
          gc();
          peakLive = Math.max(peakLive, process.memoryUsage().heapUsed);
        }
      }
      const growth = {
        heapMB: (peakHeap - start.heapUsed) / MB,
        rssMB: (peakRss - start.rss) / MB,
        liveMB: (peakLive - start.heapUsed) / MB,
        csvMB: bytes / MB,
        chunks,
      };
      console.info(
        `[exports ${kind}] ${ROWS} rows streamed:`,
        JSON.stringify(growth, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)),
      );

      expect(newlines).toBe(ROWS + 1);
      expect(
        head.startsWith(
          `${CLICKS_HEADER.join(',')}\r\n${referrer.code},${referrer.externalId},big1,https://shop.example/landing?ref=${referrer.code}&i=1&pad=x`,
        ),
      ).toBe(true);
      const last = new TextDecoder().decode(tail).split('\r\n').at(-2) ?? '';
      expect(last).toBe(
        `${referrer.code},${referrer.externalId},big${ROWS},https://shop.example/landing?ref=${referrer.code}&i=${ROWS}&pad=${'x'.repeat(PAD)},,${new Date(Date.parse('2025-01-01T00:00:00Z') + ROWS * 1000).toISOString()}`,
      );
      // Enough volume that holding the export in memory would break the bounds below.
      expect(bytes).toBeGreaterThan(50 * MB);
      expect(chunks).toBeGreaterThan(20);
      expect(peakHeap - start.heapUsed).toBeLessThan(HEAP_BOUND);
      expect(peakRss - start.rss).toBeLessThan(RSS_BOUND);
      if (gc) expect(peakLive - start.heapUsed).toBeLessThan(LIVE_BOUND);
    }, 120_000);
  });

  describe('formula injection behind leading whitespace or line breaks', () => {
    it('neutralises cells that start with spaces, LF or CRLF before = + - @, and a leading LF', async () => {
      const hidden = await buildProgram(api);
      const referrer = await buildParticipant(api, hidden, { externalId: ` =1+1-${run}` });
      const referred = [`\r\n@SUM(A1)-${run}`, `\n=cmd-${run}`, `\nplain-${run}`];
      for (const externalId of referred) {
        const answer = await conversion(api, hidden, {
          type: 'signup',
          eventId: `e-${externalId}`,
          externalId,
          referral: { code: referrer.code },
        });
        expect(answer.attribution.status).toBe('attributed');
      }
      await click(api, hidden, { code: referrer.code, vid: `ws-${run}`, url: `  +1-${run}`, referrer: `\t-2` });

      const referrals = await rowsOf(hidden, 'referrals.csv');
      expect(referrals.map((row) => [row[0], row[3]]).sort()).toEqual(
        referred.map((externalId) => [`' =1+1-${run}`, `'${externalId}`]).sort(),
      );
      const [clickRow] = await rowsOf(hidden, 'clicks.csv');
      expect(clickRow?.slice(1, 5)).toEqual([`' =1+1-${run}`, `ws-${run}`, `'  +1-${run}`, `'\t-2`]);
    });
  });
});
