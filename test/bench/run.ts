/**
 * `npm run bench`: ingest throughput of the collector against bare Koa, measured in
 * the same run (A B A B, autocannon, 50 connections), on PostgreSQL and on PGlite;
 * server signups per second; acknowledged-but-lost rows; peak RSS; and two collector
 * processes on one PostgreSQL keeping attribution exactly-once.
 *
 * The last line is one JSON object (clickRatioPg, clickP99MsPg, clickRatioPglite,
 * signupsPerSecPg, lostAcked, peakRssMb, …). Loopback only; every load is bounded in time.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server;
 * the bench creates and drops its own database there. BENCH_SECONDS sets each load's length.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  ADMIN_TOKEN,
  BASE_URL,
  COLLECTOR,
  clickBody,
  countRows,
  fmt,
  json,
  type Load,
  load,
  measureCpu,
  pick,
  type Proc,
  ROOT,
  setupProgram,
  startProcess,
  uniqueId,
} from './common.ts';

async function main() {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  const dbName = `bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: BASE_URL });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const dbUrl = new URL(BASE_URL);
  dbUrl.pathname = `/${dbName}`;
  const databaseUrl = dbUrl.toString();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-pglite-'));
  const summary: Record<string, number | boolean> = {};
  const procs: Proc[] = [];
  try {
    const bare = await startProcess(['test/bench/bare.mjs'], {});
    procs.push(bare);
    const collector = await startProcess(COLLECTOR, { DATABASE_URL: databaseUrl, ADMIN_TOKEN, WORKERS: process.env.BENCH_WORKERS ?? '1' });
    procs.push(collector);
    const pgSetup = await setupProgram(collector.url, 100);
    const plain = { 'content-type': 'text/plain' };

    // A B A B: bare Koa, collector on PostgreSQL.
    const bareRuns: Load[] = [];
    const pgRuns: Load[] = [];
    const pgDb = { url: databaseUrl, name: dbName };
    let bareCpu = 0;
    let collectorClickCpu = 0;
    let pgClickCpu = 0;
    const storedBefore = await countRows(databaseUrl, 'select count(*) as n from clicks');
    for (let round = 0; round < 2; round++) {
      const bareLoad = await measureCpu({ bare: bare.pid }, undefined, () => load(bare.url, '/v1/clicks', clickBody('pk_x', ['X']), plain));
      bareRuns.push(bareLoad.result);
      bareCpu += bareLoad.cpu.bare ?? 0;
      console.log(
        fmt(`bare koa #${round + 1}`, bareLoad.result),
        `cpu ${Math.round((bareLoad.cpu.bare ?? 0) / 1000)} ms, generator ${Math.round((bareLoad.cpu.generator ?? 0) / 1000)} ms`,
      );
      const pgLoad = await measureCpu({ collector: collector.pid }, pgDb, () =>
        load(collector.url, '/v1/clicks', clickBody(pgSetup.keys.publishable, pgSetup.codes), plain),
      );
      pgRuns.push(pgLoad.result);
      collectorClickCpu += pgLoad.cpu.collector ?? 0;
      pgClickCpu += pgLoad.cpu.postgres ?? 0;
      console.log(
        fmt(`clicks postgres #${round + 1}`, pgLoad.result),
        `cpu collector ${Math.round((pgLoad.cpu.collector ?? 0) / 1000)} ms, postgres ${Math.round((pgLoad.cpu.postgres ?? 0) / 1000)} ms, generator ${Math.round((pgLoad.cpu.generator ?? 0) / 1000)} ms`,
      );
    }
    const avg = (runs: Load[], key: keyof Load) => runs.reduce((sum, run) => sum + run[key], 0) / runs.length;
    const bareRps = avg(bareRuns, 'rps');
    const ackedPg = pgRuns.reduce((sum, run) => sum + run.ok, 0);
    const storedPg = await countRows(databaseUrl, 'select count(*) as n from clicks');
    const bareRequests = bareRuns.reduce((sum, run) => sum + run.ok + run.non2xx, 0);
    const clicksStored = storedPg - storedBefore;

    // Server signups (attribution + rewards, one transaction each).
    const referralsBefore = await countRows(databaseUrl, `select count(*) as n from referrals`);
    const signupLoad = await measureCpu({ collector: collector.pid }, pgDb, () =>
      load(
        collector.url,
        '/v1/conversions',
        () =>
          JSON.stringify({ type: 'signup', eventId: uniqueId('e'), externalId: uniqueId('u'), referral: { code: pick(pgSetup.codes) } }),
        { 'content-type': 'application/json', authorization: `Bearer ${pgSetup.keys.secret}` },
      ),
    );
    const signups = signupLoad.result;
    console.log(
      fmt('signups postgres', signups),
      `cpu collector ${Math.round((signupLoad.cpu.collector ?? 0) / 1000)} ms, postgres ${Math.round((signupLoad.cpu.postgres ?? 0) / 1000)} ms`,
    );
    const referralsPg = await countRows(databaseUrl, `select count(*) as n from referrals`);
    const signupsStored = referralsPg - referralsBefore;

    // Scale-out: a second process on the same database; one user, many codes, both processes.
    const second = await startProcess(COLLECTOR, { DATABASE_URL: databaseUrl, ADMIN_TOKEN });
    procs.push(second);
    let exactlyOnce = true;
    for (let user = 0; user < 20; user++) {
      const externalId = uniqueId('race');
      const answers = await Promise.all(
        pgSetup.codes.slice(0, 20).map((code, i) =>
          json(`${(i % 2 ? second : collector).url}/v1/conversions`, {
            method: 'POST',
            auth: pgSetup.keys.secret,
            body: JSON.stringify({ type: 'signup', eventId: `${externalId}-${i}`, externalId, referral: { code } }),
          }),
        ),
      );
      const referrers = new Set(answers.map((answer) => answer.attribution.referrer));
      const rows = await countRows(
        databaseUrl,
        `select count(*) as n from referrals r join participants p on p.id = r.referred_id where p.external_id = '${externalId}'`,
      );
      if (rows !== 1 || referrers.size !== 1) exactlyOnce = false;
    }
    console.log(`scale-out: two processes, 20 users × 20 racing signups → exactly one referral each: ${exactlyOnce}`);
    const peakPg = collector.peakRssMb();
    await second.stop();
    const exitPg = await collector.stop();

    // PGlite: the same click load against the embedded database.
    const embedded = await startProcess(COLLECTOR, { DATA_DIR: dataDir, ADMIN_TOKEN });
    procs.push(embedded);
    const liteSetup = await setupProgram(embedded.url, 100);
    const liteRun = await load(embedded.url, '/v1/clicks', clickBody(liteSetup.keys.publishable, liteSetup.codes), plain);
    console.log(fmt('clicks pglite', liteRun));
    const liteSummary = await json(`${embedded.url}/v1/reports/summary`, { auth: liteSetup.keys.secret });
    const peakLite = embedded.peakRssMb();
    const exitLite = await embedded.stop();
    await bare.stop();

    const pgRps = avg(pgRuns, 'rps');
    const perUnit = (us: number, units: number) => (units > 0 ? Math.round(us / units) : 0);
    const bareCpuUs = perUnit(bareCpu, bareRequests);
    const clickCpuUsPg = perUnit(collectorClickCpu, clicksStored);
    Object.assign(summary, {
      bareCpuUs,
      clickCpuUsPg,
      pgCpuUsPerClick: perUnit(pgClickCpu, clicksStored),
      clickCpuRatioPg: clickCpuUsPg > 0 ? Number((bareCpuUs / clickCpuUsPg).toFixed(3)) : 0,
      signupCpuUsPg: perUnit((signupLoad.cpu.collector ?? 0) + (signupLoad.cpu.postgres ?? 0), signupsStored),
      signupCollectorCpuUsPg: perUnit(signupLoad.cpu.collector ?? 0, signupsStored),
      signupPgCpuUsPg: perUnit(signupLoad.cpu.postgres ?? 0, signupsStored),
      bareRps: Math.round(bareRps),
      clickRpsPg: Math.round(pgRps),
      clickRatioPg: Number((pgRps / bareRps).toFixed(3)),
      clickP50MsPg: avg(pgRuns, 'p50'),
      clickP99MsPg: avg(pgRuns, 'p99'),
      clickRpsPglite: liteRun.rps,
      clickRatioPglite: Number((liteRun.rps / bareRps).toFixed(3)),
      clickP99MsPglite: liteRun.p99,
      signupsPerSecPg: signups.rps,
      signupP99MsPg: signups.p99,
      ackedClicksPg: ackedPg,
      storedClicksPg: storedPg,
      ackedClicksPglite: liteRun.ok,
      storedClicksPglite: liteSummary.clicks,
      lostAcked: Math.max(0, ackedPg - storedPg) + Math.max(0, liteRun.ok - liteSummary.clicks) + Math.max(0, signups.ok - referralsPg),
      peakRssMb: Math.max(peakPg, peakLite),
      peakRssMbPg: peakPg,
      peakRssMbPglite: peakLite,
      scaleOutExactlyOnce: exactlyOnce,
      cleanExit: exitPg === 0 && exitLite === 0,
    });
  } finally {
    await Promise.all(procs.map((proc) => proc.stop()));
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => undefined);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(summary));
}

await main();
