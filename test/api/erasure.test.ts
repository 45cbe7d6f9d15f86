/**
 * `DELETE /v1/participants/:externalId` (GDPR erasure) through the real app, on every
 * database: a person who clicked, signed up, bought and earned rewards is erased.
 * Their email, name, hashed IPs and user agents are gone from every table (read
 * straight from the database), their host user id is replaced by a pseudonym, their
 * codes and Stripe customer links are gone; referrals, conversions and the reward
 * ledger stay, so the referrer's figures and every report are unchanged.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { clickDetails } from '../helpers/rows.ts';
import { expectOk } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';

const RULES = [
  { id: 'signup-cash', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 500, currency: 'USD' } },
  { id: 'welcome', on: 'signup', to: 'referee', reward: { kind: 'credit', amount: 300, currency: 'USD' } },
  { id: 'share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 } },
];

/** How a click keeps an IP hash: see ipKeySql. */
const ipKey = (hash: string) => createHash('md5').update(hash).digest('hex');

/** Every table of the schema whose rows (as text, every column) contain `needle`, with the count. */
async function tablesHolding(db: Knex, needle: string): Promise<Record<string, number>> {
  const tables =
    // Tables, and a partitioned table once (its partitions are read through it).
    (
      await db.raw(
        `select c.relname as table_name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = current_schema() and c.relkind in ('r', 'p') and not c.relispartition`,
      )
    ).rows as Array<{ table_name: string }>;
  const found: Record<string, number> = {};
  for (const { table_name: table } of tables) {
    const [row] = (await db.raw(`select count(*)::int as n from ?? as t where strpos(t::text, ?) > 0`, [table, needle])).rows as Array<{
      n: number;
    }>;
    if (row && row.n > 0) found[table] = row.n;
  }
  return found;
}

describe.each(DATABASES)('erasure (%s)', (kind) => {
  let api: TestApp;
  let db: Knex;
  useTestApp(kind, (suite) => ({ api, db } = suite), { env: { TRUST_PROXY: 'true' } });

  const run = randomBytes(4).toString('hex');
  const person = {
    externalId: `host-user-${run}`,
    email: `erin.${run}@example.com`,
    name: `Erin Erasable ${run}`,
    vid: `vid_erin_${run}`,
    userAgent: `ErinBrowser/${run}`,
  };
  /** Each visitor has an address of their own, so their hashed IPs tell them apart. */
  const asPerson = { headers: { 'user-agent': person.userAgent, 'x-forwarded-for': '203.0.113.50' } };
  const referrerUserAgent = `ReferrerBrowser/${run}`;
  let personIpHash: string;
  let program: ProgramFixture;
  let referrer: Awaited<ReturnType<typeof buildParticipant>>;
  let erased: { id: string; code: string };
  let before: { referrer: any; summary: any; leaderboard: any; rewards: any[]; referrals: number; conversions: number; clicks: number };

  const secret = () => ({ auth: program.secret });
  const snapshot = async () => ({
    referrer: expectOk(await api.get(`/v1/participants/${referrer.externalId}`, secret())),
    summary: expectOk(await api.get('/v1/reports/summary', secret())),
    leaderboard: expectOk(await api.get('/v1/reports/referrers', secret())),
    rewards: (expectOk(await api.get('/v1/rewards?limit=500', secret())).data as any[]).map(
      ({ participant: _participant, ...rest }) => rest,
    ),
    referrals: Number((await db('referrals').where({ program_id: program.id }).count({ n: '*' }))[0]?.n),
    conversions: Number((await db('conversions').where({ program_id: program.id }).count({ n: '*' }))[0]?.n),
    clicks: Number((await clicksOf(db, program.id).count({ n: '*' }))[0]?.n),
  });

  beforeAll(async () => {
    program = await buildProgram(api, { settings: { rewardRules: RULES } });
    // Outgoing webhooks queue payloads naming people (the suite runs no delivery worker).
    await db('programs')
      .where({ id: program.id })
      .update({ settings: db.raw(`jsonb_set(settings, '{webhookUrl}', '"https://hooks.example/referral"')`) });
    referrer = await buildParticipant(api, program, { email: `rita.${run}@example.com`, name: 'Rita Referrer' });

    // The referrer's own visit, and the person's: a click, a browser signup, then the server's.
    expectOk(
      await api.post(
        '/v1/clicks',
        { key: program.publishable, code: referrer.code, vid: `vid_rita_${run}` },
        { headers: { 'user-agent': referrerUserAgent, 'x-forwarded-for': '203.0.113.60' } },
      ),
      202,
    );
    // The person follows the link (a redirect click, then the snippet's click claims it),
    // and follows another referrer's link whose page never reported back (unclaimed).
    expectOk(await api.get(`/r/${referrer.code}`, asPerson), 302);
    expectOk(await api.post('/v1/clicks', { key: program.publishable, code: referrer.code, vid: person.vid }, asPerson), 202);
    const otto = await buildParticipant(api, program);
    expectOk(await api.get(`/r/${otto.code}`, asPerson), 302);
    const browserSignup = {
      key: program.publishable,
      type: 'signup',
      eventId: `signup-${run}`,
      vid: person.vid,
      code: referrer.code,
      user: { id: person.externalId, email: person.email },
    };
    expectOk(await api.post('/v1/events', browserSignup, asPerson), 202);
    // Created with an Idempotency-Key: the stored answer echoes the email and name.
    const created = expectOk(
      await api.post(
        '/v1/participants',
        { externalId: person.externalId, email: person.email, name: person.name },
        { ...secret(), headers: { 'idempotency-key': `create-${run}` } },
      ),
    );
    erased = { id: created.id, code: created.code };
    const signup = expectOk(
      await api.post(
        '/v1/conversions',
        {
          type: 'signup',
          eventId: `signup-${run}`,
          externalId: person.externalId,
          email: person.email,
          referral: { code: referrer.code, vid: person.vid },
        },
        { ...secret(), headers: { 'idempotency-key': `signup-${run}` } },
      ),
    );
    expect(signup.attribution).toMatchObject({ referrer: referrer.externalId });
    const purchase = expectOk(
      await api.post(
        '/v1/conversions',
        { type: 'purchase', eventId: `order-${run}`, externalId: person.externalId, amount: 12_000, currency: 'USD' },
        secret(),
      ),
    );
    expect(purchase.rewards.map((reward: { amount: number }) => reward.amount)).toContain(1200);
    await db('stripe_customers').insert({ program_id: program.id, customer_id: `cus_${run}`, participant_id: erased.id });

    // The person is everywhere before.
    personIpHash = ((await db('conversions').where({ participant_id: erased.id, type: 'signup' }).first('ip_hash')) as { ip_hash: string })
      .ip_hash;
    expect(personIpHash).toMatch(/\S{16,}/);
    expect(await tablesHolding(db, personIpHash)).toEqual({ conversions: 1, referrals: 1 });
    // Clicks keep the hash's 16-byte key (ipKeySql), shown as hex in a row's text.
    expect(await tablesHolding(db, ipKey(personIpHash))).toEqual({ clicks: 2 });
    for (const needle of [person.email, person.externalId, person.userAgent])
      expect(Object.keys(await tablesHolding(db, needle)), needle).not.toEqual([]);
    expect(await db('rewards').where({ beneficiary_id: erased.id }).count({ n: '*' })).toEqual([{ n: expect.anything() }]);
    before = await snapshot();
    expect(before.rewards.length).toBeGreaterThanOrEqual(3);

    const reply = await api.request('DELETE', `/v1/participants/${encodeURIComponent(person.externalId)}`, undefined, secret());
    expect(reply.status, reply.text).toBe(204);
    expect(reply.text).toBe('');
  });

  it('leaves no email, name, host user id, hashed IP or user agent of theirs in any table', async () => {
    for (const needle of [person.email, person.name, person.externalId, person.userAgent, personIpHash, ipKey(personIpHash)]) {
      expect(await tablesHolding(db, needle), needle).toEqual({});
    }
    // What stays names the referrer, not them.
    expect(Object.keys(await tablesHolding(db, referrerUserAgent))).toEqual(['user_agents']);
  });

  it('replaces the participant by a pseudonym: no email, name or email key, marked erased', async () => {
    const row = await db('participants').where({ id: erased.id }).first();
    expect(row).toMatchObject({ external_id: `erased:${erased.id}`, email: null, name: null, referred_by: expect.any(String) });
    if ('email_key' in row) expect(row.email_key).toBeNull();
    expect(row.erased_at).toBeInstanceOf(Date);
  });

  it('drops the hashed IP and user agent from their clicks, conversions and referral, and keeps the referrer’s', async () => {
    const clicks = await clicksOf(db, program.id).where('k.vid', person.vid).select('k.*');
    expect(clicks.length).toBeGreaterThan(0);
    for (const click of clicks) expect(click).toMatchObject({ ip_hash: null, user_agent_id: null });
    const theirs = await db('conversions').where({ participant_id: erased.id });
    expect(theirs.map((c) => c.type).sort()).toEqual(['purchase', 'signup']);
    for (const conversion of theirs) expect(conversion.ip_hash).toBeNull();
    expect(await db('referrals').where({ referred_id: erased.id }).first('ip_hash')).toEqual({ ip_hash: null });
    const referrersClick = await clickDetails(db).where('c.program_id', program.id).where('k.vid', `vid_rita_${run}`).first();
    expect(referrersClick).toMatchObject({ ip_hash: expect.stringMatching(/^[0-9a-f]{32}$/), user_agent: referrerUserAgent });
  });

  it('disables their codes and removes their Stripe customer links', async () => {
    const codes = await db('codes').where({ participant_id: erased.id });
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) expect(code.disabled_at).toBeInstanceOf(Date);
    const link = await api.get(`/r/${erased.code}`);
    expect(link.status).toBe(302); // to the landing page, without their code
    expect(link.headers.get('location')).not.toContain('ref=');
    expect(await db('stripe_customers').where({ participant_id: erased.id })).toEqual([]);
  });

  it('keeps referrals, conversions and the ledger: the referrer’s figures and the reports do not change', async () => {
    const after = await snapshot();
    expect(after).toEqual(before);
    const ledger = expectOk(await api.get('/v1/rewards?limit=500', secret())).data as Array<{ participant: string; rule: string }>;
    expect(ledger.filter((reward) => reward.rule === 'welcome').map((reward) => reward.participant)).toEqual([`erased:${erased.id}`]);
    const referrals = expectOk(await api.get('/v1/referrals', secret())).data as Array<{ referred: string; referredEmail: string | null }>;
    expect(referrals).toEqual([expect.objectContaining({ referred: `erased:${erased.id}`, referredEmail: null })]);
  });

  it('exports show the pseudonym', async () => {
    const referrals = expectOk(await api.get('/v1/exports/referrals.csv', secret())) as unknown as string;
    expect(referrals).toContain(`${referrer.externalId},rita.${run}@example.com,Rita Referrer,erased:${erased.id},,,${referrer.code},`);
    const rewards = expectOk(await api.get('/v1/exports/rewards.csv', secret())) as unknown as string;
    expect(rewards).toContain(`,erased:${erased.id},,welcome,`);
  });

  it('replays the idempotent answers without the person', async () => {
    const replay = await api.post(
      '/v1/participants',
      { externalId: person.externalId, email: person.email, name: person.name },
      { ...secret(), headers: { 'idempotency-key': `create-${run}` } },
    );
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toMatchObject({ id: erased.id, externalId: `erased:${erased.id}`, email: null, name: null });
  });

  it('answers 404 to a second erasure, an unknown person and the pseudonym', async () => {
    for (const externalId of [person.externalId, `nobody-${run}`, `erased:${erased.id}`]) {
      const reply = await api.request('DELETE', `/v1/participants/${encodeURIComponent(externalId)}`, undefined, secret());
      expect(reply.status, externalId).toBe(404);
      expect(reply.body.error.code).toBe('not_found');
    }
  });

  it("another program's secret key cannot erase (or see) this program's people", async () => {
    const other = await buildProgram(api);
    const reply = await api.request('DELETE', `/v1/participants/${encodeURIComponent(referrer.externalId)}`, undefined, {
      auth: other.secret,
    });
    expect(reply.status).toBe(404);
    expect(await db('participants').where({ id: referrer.id }).first('external_id', 'email')).toEqual({
      external_id: referrer.externalId,
      email: `rita.${run}@example.com`,
    });
    expect((await api.request('DELETE', `/v1/participants/${encodeURIComponent(referrer.externalId)}`)).status).toBe(401);
  });

  it('a later POST /v1/participants with the same externalId makes a new, separate participant', async () => {
    const again = expectOk(await api.post('/v1/participants', { externalId: person.externalId }, secret()), 201);
    expect(again.id).not.toBe(erased.id);
    expect(again.code).not.toBe(erased.code);
    const view = expectOk(await api.get(`/v1/participants/${encodeURIComponent(person.externalId)}`, secret()));
    expect(view).toMatchObject({ id: again.id, email: null, referredBy: null, stats: { clicks: 0, signups: 0, purchases: 0 } });
  });

  it('erases a referrer too: their balances stay, under the pseudonym', async () => {
    const fixture = await buildProgram(api, { settings: { rewardRules: RULES } });
    const rita = await buildParticipant(api, fixture, { email: `r2.${run}@example.com`, name: 'Second Referrer' });
    expectOk(
      await api.post(
        '/v1/conversions',
        { type: 'signup', eventId: uniq('s-'), externalId: uniq('friend-'), referral: { code: rita.code } },
        { auth: fixture.secret },
      ),
    );
    const balances = expectOk(await api.get(`/v1/participants/${rita.externalId}`, { auth: fixture.secret })).rewards;
    expect((await api.request('DELETE', `/v1/participants/${rita.externalId}`, undefined, { auth: fixture.secret })).status).toBe(204);
    const view = expectOk(await api.get(`/v1/participants/${encodeURIComponent(`erased:${rita.id}`)}`, { auth: fixture.secret }));
    expect(view).toMatchObject({ email: null, name: null, code: null, rewards: balances });
    expect(await tablesHolding(db, `r2.${run}@example.com`)).toEqual({});
  });
});
