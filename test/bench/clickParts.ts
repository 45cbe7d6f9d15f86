/**
 * What a click batch costs PostgreSQL, and which part of it: the batch statement
 * (domain/clicks.ts) and variants of it without one part, run on one connection with
 * the collector's click session (generic plan, no bitmap scans), batch after batch of new visitors on a
 * program of 100 referrers. Prints PostgreSQL's CPU per click of each variant (from
 * /proc, the backend's own time), the variants taking turns for ROUNDS rounds so
 * that the machine's moods fall on all of them alike.
 *
 *   npx tsx test/bench/clickParts.ts            # all variants, 3 rounds, 24 clicks a batch
 *   SIZE=50 ROUNDS=5 ONLY=full,insertOnly npx tsx test/bench/clickParts.ts
 *   EXPLAIN=1 npx tsx test/bench/clickParts.ts  # EXPLAIN ANALYZE of one batch (auto_explain)
 *
 * PostgreSQL on the same machine (BENCH_DATABASE_URL, default the local `test`
 * database); it works in a schema of its own, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { BASE_URL } from './common.ts';

process.env.TEST_DATABASE_URL ??= BASE_URL;
const { openTestDb } = await import('../helpers/databases.ts');
const { ADMIN_TOKEN, startTestApp } = await import('../helpers/app.ts');
const { BATCH_SQL, CLICK_DEDUPE_MS } = await import('../../collector/src/domain/clicks.ts');
const { clickSettingsSql } = await import('../../collector/src/storage/db.ts');

const SIZE = Number(process.env.SIZE ?? 24);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BATCHES = 300;
const PARAMETERS = `?::int[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]`;
const COLUMNS = 'i, program_id, code, given, vid, ip, url, referrer, user_agent';

/** The batch statement, and the same less one part (each must still take the batch's twelve parameters). */
const VARIANTS: Record<string, string> = {
  full: BATCH_SQL,
  withoutMonthlyRollup: BATCH_SQL.replace(/rollup_monthly as \([\s\S]*?\), rollup_program/, 'rollup_program'),
  withoutRollups: BATCH_SQL.replace(/, rollup_daily as \([\s\S]*?\) select d\.i/, ' select d.i'),
  withoutVisitorLookup: BATCH_SQL.replace(
    /left join lateral \(\s*select count\(\*\) > 0 as known[\s\S]*?\) v on true/,
    'left join lateral (select false as known, null::timestamptz as last_on_code) v on true',
  ),
  insertOnly: `with input as (select * from unnest(${PARAMETERS}) as t(${COLUMNS})),
    unused as (select ?::timestamptz, ?::timestamptz, ?::timestamptz)
    insert into clicks (code_id, vid, url) select (select id from codes c where lower(c.code) = input.code), vid, url from input`,
  parametersOnly: `select ${PARAMETERS}, ?::timestamptz, ?::timestamptz, ?::timestamptz`,
};
for (const [name, sql] of Object.entries(VARIANTS))
  if (name !== 'full' && name !== 'insertOnly' && name !== 'parametersOnly' && sql === BATCH_SQL)
    throw new Error(`variant ${name} no longer matches the batch statement: update it`);

const testDb = await openTestDb('postgres');
const app = await startTestApp(testDb.db);
const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
try {
  const made = await app.post(
    '/v1/programs',
    { name: 'Parts', origins: ['https://parts.example'], landingUrl: 'https://parts.example/' },
    { auth: ADMIN_TOKEN },
  );
  const programId = made.body.program.id as string;
  const codes: string[] = [];
  for (let i = 0; i < 100; i++)
    codes.push((await app.post('/v1/participants', { externalId: `r${i}` }, { auth: made.body.keys.secret })).body.code);
  const schema = (await testDb.db.raw('select current_schema() as name')).rows[0].name as string;
  await client.connect();
  await client.query(`set search_path = ${schema}, public; set jit = off; ${clickSettingsSql('session')}`);
  const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid as number;
  const cpuUs = () => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  };
  const numbered = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  /** A batch of SIZE new visitors on random codes, as recordClicks passes it. */
  const batch = () => {
    const rows = [...Array(SIZE).keys()];
    const since = new Date(Date.now() - CLICK_DEDUPE_MS);
    const picked = rows.map(() => codes[Math.floor(Math.random() * codes.length)] as string);
    return [
      rows,
      rows.map(() => programId),
      picked.map((code) => code.toLowerCase()),
      picked,
      rows.map(() => `v${randomBytes(12).toString('base64url')}`),
      rows.map(() => `ip${Math.floor(Math.random() * 1000)}`),
      rows.map(() => 'https://parts.example/?ref=x'),
      rows.map(() => null),
      rows.map(() => null),
      since,
      since,
      since,
    ];
  };

  if (process.env.EXPLAIN) {
    const query = { name: 'explained', text: numbered(BATCH_SQL) };
    for (let i = 0; i < 30; i++) await client.query({ ...query, values: batch() });
    await client.query(
      `load 'auto_explain'; set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on;
       set auto_explain.log_buffers = on; set client_min_messages = log`,
    );
    client.on('notice', (notice) => console.log(notice.message));
    await client.query({ ...query, values: batch() });
  } else {
    const only = process.env.ONLY?.split(',');
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, sql] of Object.entries(VARIANTS)) {
        if (only && !only.includes(name)) continue;
        const query = { name, text: numbered(sql) };
        for (let i = 0; i < 20; i++) await client.query({ ...query, values: batch() });
        const before = cpuUs();
        for (let i = 0; i < BATCHES; i++) await client.query({ ...query, values: batch() });
        const perClick = (cpuUs() - before) / (BATCHES * SIZE);
        console.log(`round ${round}  ${name.padEnd(22)} PostgreSQL ${perClick.toFixed(1).padStart(6)} µs a click (${SIZE} a batch)`);
      }
    }
  }
} finally {
  await client.end().catch(() => undefined);
  await app.close();
  await testDb.close();
}
