/**
 * Attribution as a property, through the real app, on every database: random
 * interleavings of clicks, browser and server signups and purchases, disabled codes
 * and retries, across a few customers, codes, visitors and emails, each run on one
 * fresh program. Afterwards:
 *  - every participant has at most one referrer, and `referredBy` agrees with it;
 *  - nobody refers themselves (same participant, same email, or a visitor id the
 *    referrer had converted with before);
 *  - the referral graph has no cycle;
 *  - an attribution, once answered, never changes;
 *  - each event is stored once (one signup per customer, one row per purchase id);
 *  - replaying any already-sent request changes no row counts (nor the reports),
 *    and a server conversion replays its first answer.
 */
import fc from 'fast-check';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { AttributionResponse } from '../../shared/responses.ts';
import type { Reply, TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildProgram, uniq, type ProgramFixture } from '../helpers/factories.ts';
import { clicksOf } from '../../collector/src/domain/clicks.ts';
import { ofProgramSql } from '../helpers/rows.ts';

/** Customers a0…a5; a0 and a1 exist (with codes) before the run starts. */
const ACTORS = 6;
const PRECREATED = 2;
const VISITORS = 3;
/** Email choices: shared addresses make same-email self-referrals possible; one is disposable. */
const EMAILS = ['same@example.com', 'Same@Example.com ', 'other@example.com', 'x@mailinator.com', null, null] as const;

/**
 * Whose code a command carries: an actor's, the actor's own, the code of someone the
 * actor referred (directly or further down: a cycle if it attributed), one nobody
 * has, or none.
 */
type CodeRef = number | 'self' | 'downline' | 'unknown' | null;

type Command =
  | { kind: 'click'; owner: number | 'unknown'; visitor: number }
  | { kind: 'signup'; via: 'browser' | 'server'; actor: number; code: CodeRef; visitor: number | null }
  | {
      kind: 'purchase';
      via: 'browser' | 'server';
      actor: number;
      code: CodeRef;
      visitor: number | null;
      amount: number;
      currency: 'USD' | 'EUR';
      /** Server only: report a browser purchase of this customer again (same order id). */
      confirm: boolean;
    }
  | { kind: 'disable'; owner: number }
  | { kind: 'retry'; pick: number };

interface Scenario {
  attribution: 'first' | 'last';
  emails: Array<(typeof EMAILS)[number]>;
  commands: Command[];
}

const actor = fc.nat({ max: ACTORS - 1 });
const codeRef: fc.Arbitrary<CodeRef> = fc.oneof(
  { weight: 6, arbitrary: actor },
  { weight: 3, arbitrary: fc.constant('self' as const) },
  { weight: 2, arbitrary: fc.constant('downline' as const) },
  { weight: 1, arbitrary: fc.constant('unknown' as const) },
  { weight: 3, arbitrary: fc.constant(null) },
);
const visitor = fc.nat({ max: VISITORS - 1 });
const via = fc.constantFrom('browser' as const, 'server' as const);
/** A visitor id half the time (fc.option would give null only one time in six). */
const maybeVisitor = fc.oneof(fc.constant(null), visitor);

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('click' as const),
      owner: fc.oneof({ weight: 5, arbitrary: actor }, { weight: 1, arbitrary: fc.constant('unknown' as const) }),
      visitor,
    }),
  },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('signup' as const), via, actor, code: codeRef, visitor: maybeVisitor }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('purchase' as const),
      via,
      actor,
      code: codeRef,
      visitor: maybeVisitor,
      amount: fc.integer({ min: 0, max: 100_000 }),
      currency: fc.constantFrom('USD' as const, 'EUR' as const),
      confirm: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disable' as const), owner: actor }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('retry' as const), pick: fc.nat() }) },
);

const scenario: fc.Arbitrary<Scenario> = fc.record({
  attribution: fc.constantFrom('first' as const, 'last' as const),
  emails: fc.array(fc.constantFrom(...EMAILS), { minLength: ACTORS, maxLength: ACTORS }),
  // size 'medium': up to 25 commands, about 13 on average (the default size stops near 12).
  commands: fc.array(command, { minLength: 3, maxLength: 25, size: 'medium' }),
});

/** A safety net: no property may stall the suite, whatever happens. */
const TIME_LIMIT_MS = 60_000;
/** FC_RUNS runs each property that many times (searching longer; the time limits grow with it); FC_SEED replays a reported run. */
const RUNS = process.env.FC_RUNS ? Number(process.env.FC_RUNS) : undefined;
const options = (numRuns: number) => ({
  numRuns: RUNS ?? numRuns,
  plugins: [fc.interruptAfterTimeLimit(RUNS ? RUNS * 3_000 : TIME_LIMIT_MS)],
  ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true } : {}),
});
const TIMEOUT = { timeout: RUNS ? RUNS * 4_000 : 120_000 };
/**
 * Every shrink step replays a whole scenario over HTTP: cap them, so a failure is
 * reported within seconds (its counterexample may be a little longer than minimal).
 */
const MAX_SHRINKS = 30;

const TABLES = ['participants', 'codes', 'clicks', 'conversions', 'referrals', 'decisions', 'rewards'] as const;
type Counts = Record<(typeof TABLES)[number], number>;

/** One request as sent, to replay it byte for byte. */
interface Sent {
  kind: 'click' | 'event' | 'conversion';
  path: string;
  body: Record<string, unknown>;
  auth?: string;
  first: Reply;
}

describe.each(DATABASES)('attribution properties (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  useTestApp(kind, (suite) => ({ db, api } = suite));

  async function counts(programId: string): Promise<Counts> {
    const result = await db.raw(
      `select ${TABLES.map((table) => `(select count(*) from ${ofProgramSql(table)} = ?) as ${table}`).join(', ')}`,
      TABLES.map(() => programId),
    );
    const row = result.rows[0] as Record<string, unknown>;
    return Object.fromEntries(TABLES.map((table) => [table, Number(row[table])])) as Counts;
  }

  /** Runs one scenario on a fresh program; returns what the checks need. */
  async function run(input: Scenario, options: { checkReplays: boolean }) {
    const runId = uniq('r');
    const fixture: ProgramFixture = await buildProgram(api, { settings: { attribution: input.attribution } });
    const externalId = (i: number) => `${runId}-a${i}`;
    const vid = (i: number) => `${runId}v${i}`;
    const email = (i: number) => input.emails[i] ?? null;
    const codes = new Map<number, string>();
    const exists = new Set<number>();
    const sent: Sent[] = [];
    /** actor → the referrer a server answer named (attributed or existing). */
    const claims: Array<{ actor: number; referrer: string; status: string }> = [];
    const browserPurchases = new Map<number, Array<{ id: string; amount: number; currency: string }>>();
    const validClicks = new Set<string>();
    const disabled = new Set<string>();
    const purchaseIds = new Set<string>();
    const signedUp = new Set<number>();
    let events = 0;

    for (let i = 0; i < PRECREATED; i++) {
      const mail = email(i);
      const reply = await api.post(
        '/v1/participants',
        { externalId: externalId(i), ...(mail ? { email: mail } : {}) },
        { auth: fixture.secret },
      );
      expect(reply.status, reply.text).toBe(201);
      codes.set(i, reply.body.code);
      exists.add(i);
    }

    /** The code of an actor as the host would hand it out (fetched once the actor exists). */
    const codeOf = async (ref: number | 'unknown'): Promise<string> => {
      if (ref === 'unknown') return `NOPE${runId}`;
      if (!codes.has(ref) && exists.has(ref)) {
        const reply = await api.get(`/v1/participants/${encodeURIComponent(externalId(ref))}`, { auth: fixture.secret });
        expect(reply.status, reply.text).toBe(200);
        if (reply.body.code) codes.set(ref, reply.body.code);
      }
      return codes.get(ref) ?? `NOPE${runId}`;
    };

    /** The actor furthest down the chain of people this actor referred, if any. */
    const downlineOf = async (who: number): Promise<number | null> => {
      const result = await db.raw(
        `with recursive down(id, depth) as (
           select r.referred_id, 1 from referrals r join participants p on p.id = r.referrer_id
            where p.program_id = ? and p.external_id = ?
           union all
           select r.referred_id, d.depth + 1 from referrals r join down d on r.referrer_id = d.id where d.depth < 20
         ) select p.external_id from down join participants p on p.id = down.id order by down.depth desc limit 1`,
        [fixture.id, externalId(who)],
      );
      const found = (result.rows[0] as { external_id: string } | undefined)?.external_id;
      return found ? Number(found.slice(found.lastIndexOf('-a') + 2)) : null;
    };

    const send = async (entry: Omit<Sent, 'first'>): Promise<Reply> => {
      const reply = await api.post(entry.path, entry.body, entry.auth ? { auth: entry.auth } : {});
      const expected = entry.kind === 'conversion' ? 200 : 202;
      expect(reply.status, `${entry.path} ${JSON.stringify(entry.body)} → ${reply.text}`).toBe(expected);
      return reply;
    };

    const recordAnswer = (who: number, reply: Reply) => {
      const attribution = reply.body.attribution as AttributionResponse;
      expect(['attributed', 'existing', 'none', 'rejected']).toContain(attribution.status);
      if (attribution.status === 'attributed' || attribution.status === 'existing') {
        expect(attribution.referrer).toEqual(expect.any(String));
        expect(attribution.referrer).not.toBe(externalId(who));
        // A referral only the browser made, which this report did not confirm, is not settled:
        // a later server report naming another referrer replaces it (DESIGN, "Trust rules").
        if (attribution.reason !== 'unconfirmed_referral')
          claims.push({ actor: who, referrer: attribution.referrer as string, status: attribution.status });
      } else {
        expect(attribution.referrer).toBeUndefined();
      }
    };

    const replay = async (entry: Sent) => {
      const before = await counts(fixture.id);
      const reply = await api.post(entry.path, entry.body, entry.auth ? { auth: entry.auth } : {});
      expect(reply.status, `replay ${entry.path} ${JSON.stringify(entry.body)} → ${reply.text}`).toBe(entry.first.status);
      if (!options.checkReplays) return;
      const after = await counts(fixture.id);
      const label = `replaying ${entry.path} ${JSON.stringify(entry.body)}`;
      if (entry.kind === 'click') {
        // A rejected click is explained each time it arrives, and a code may have been
        // disabled since: only the click rows must not move.
        expect({ ...after, decisions: 0 }, label).toEqual({ ...before, decisions: 0 });
      } else {
        expect(after, label).toEqual(before);
        expect(reply.body, label).toEqual(entry.first.body);
      }
    };

    for (const step of input.commands) {
      if (step.kind === 'retry') {
        const entry = sent[step.pick % Math.max(sent.length, 1)];
        if (entry) await replay(entry);
        continue;
      }
      if (step.kind === 'disable') {
        const code = codes.get(step.owner);
        if (code) {
          await db('codes').where({ code }).update({ disabled_at: new Date() });
          disabled.add(code);
        }
        continue;
      }
      if (step.kind === 'click') {
        const code = await codeOf(step.owner);
        const entry = { kind: 'click' as const, path: '/v1/clicks', body: { key: fixture.publishable, code, vid: vid(step.visitor) } };
        const first = await send(entry);
        const valid = step.owner !== 'unknown' && codes.has(step.owner) && !disabled.has(code);
        expect(first.body, `click ${code}`).toEqual({ valid });
        if (valid) validClicks.add(`${code}|${vid(step.visitor)}`);
        sent.push({ ...entry, first });
        continue;
      }

      const who = step.actor;
      const mail = email(who);
      const ref = step.code === 'self' ? who : step.code === 'downline' ? await downlineOf(who) : step.code;
      const code = ref === null ? undefined : await codeOf(ref);
      const eventId = `${runId}-e${events++}`;
      let entry: Omit<Sent, 'first'>;
      if (step.via === 'browser') {
        const visitorId = vid(step.visitor ?? 0);
        const order = step.kind === 'purchase' ? { id: `${runId}-o${events}`, amount: step.amount, currency: step.currency } : undefined;
        if (order) browserPurchases.set(who, [...(browserPurchases.get(who) ?? []), order]);
        entry = {
          kind: 'event',
          path: '/v1/events',
          body: {
            key: fixture.publishable,
            type: step.kind,
            eventId,
            vid: visitorId,
            ...(code ? { code } : {}),
            user: { id: externalId(who), ...(mail ? { email: mail } : {}) },
            ...(order ? { order } : {}),
          },
        };
        if (order) purchaseIds.add(order.id);
      } else {
        const earlier = step.kind === 'purchase' && step.confirm ? browserPurchases.get(who)?.[0] : undefined;
        const referral =
          code || step.visitor !== null
            ? { ...(code ? { code } : {}), ...(step.visitor !== null ? { vid: vid(step.visitor) } : {}) }
            : undefined;
        entry = {
          kind: 'conversion',
          path: '/v1/conversions',
          auth: fixture.secret,
          body: {
            type: step.kind,
            eventId: earlier?.id ?? eventId,
            externalId: externalId(who),
            ...(mail ? { email: mail } : {}),
            ...(referral ? { referral } : {}),
            ...(step.kind === 'purchase' ? { amount: earlier?.amount ?? step.amount, currency: earlier?.currency ?? step.currency } : {}),
          },
        };
        if (step.kind === 'purchase') purchaseIds.add(String(entry.body.eventId));
      }
      const first = await send(entry);
      if (entry.kind === 'conversion') recordAnswer(who, first);
      if (step.kind === 'signup') signedUp.add(who);
      exists.add(who);
      sent.push({ ...entry, first });
    }

    return { fixture, externalId, sent, claims, validClicks, purchaseIds, signedUp, replay };
  }

  /** The invariants every program must keep, whatever happened. */
  async function checkInvariants(result: Awaited<ReturnType<typeof run>>) {
    const { fixture, externalId } = result;
    const participants = (await db('participants')
      .where({ program_id: fixture.id })
      .select('id', 'external_id', 'email', 'referred_by')) as Array<{
      id: string;
      external_id: string;
      email: string | null;
      referred_by: string | null;
    }>;
    const referrals = (await db('referrals').where({ program_id: fixture.id }).select('*')) as Array<{
      id: string;
      referrer_id: string;
      referred_id: string;
      code_id: string | null;
      vid: string | null;
      created_at: Date;
    }>;
    const byId = new Map(participants.map((p) => [p.id, p]));
    const referrerOf = new Map<string, string>();

    for (const referral of referrals) {
      // At most one referrer per participant.
      expect(referrerOf.has(referral.referred_id), `two referrals for ${referral.referred_id}`).toBe(false);
      referrerOf.set(referral.referred_id, referral.referrer_id);
      const referrer = byId.get(referral.referrer_id);
      const referred = byId.get(referral.referred_id);
      expect(referrer && referred, 'referral between participants of this program').toBeTruthy();
      // Nobody refers themselves: not the same participant…
      expect(referral.referrer_id).not.toBe(referral.referred_id);
      // …not the same normalized email…
      if (referrer?.email && referred?.email) expect(referred.email, 'same-email referral').not.toBe(referrer.email);
      // …not a visitor id the referrer had converted with before.
      if (referral.vid) {
        const used = await db('conversions')
          .where({ program_id: fixture.id, participant_id: referral.referrer_id, vid: referral.vid })
          .where('created_at', '<', referral.created_at)
          .first('id');
        expect(used, `referral ${referral.id} through the referrer's own visitor id`).toBeUndefined();
      }
      // The code used, if any, belongs to the referrer.
      if (referral.code_id) {
        const code = (await db('codes').where({ id: referral.code_id }).first('participant_id')) as { participant_id: string };
        expect(code.participant_id).toBe(referral.referrer_id);
      }
    }
    // referredBy agrees with the referrals.
    for (const p of participants) expect(p.referred_by, `referredBy of ${p.external_id}`).toBe(referrerOf.get(p.id) ?? null);
    // No cycle.
    for (const start of referrerOf.keys()) {
      const seen = new Set<string>([start]);
      let current = referrerOf.get(start);
      while (current) {
        expect(seen.has(current), `cycle through ${byId.get(current)?.external_id}`).toBe(false);
        seen.add(current);
        current = referrerOf.get(current);
      }
    }
    // An attribution, once answered, never changes.
    const externalById = new Map(participants.map((p) => [p.external_id, p.id]));
    for (const claim of result.claims) {
      const id = externalById.get(externalId(claim.actor)) as string;
      const referrer = byId.get(referrerOf.get(id) ?? '');
      expect(referrer?.external_id, `the referrer of ${externalId(claim.actor)}`).toBe(claim.referrer);
    }
    // Each event stored once; each valid click once.
    const conversions = (await db('conversions').where({ program_id: fixture.id }).select('participant_id', 'type', 'event_id')) as Array<{
      participant_id: string;
      type: string;
      event_id: string;
    }>;
    const purchases = conversions.filter((c) => c.type === 'purchase');
    expect(new Set(purchases.map((c) => c.event_id))).toEqual(result.purchaseIds);
    expect(purchases).toHaveLength(result.purchaseIds.size);
    const signups = conversions.filter((c) => c.type === 'signup');
    expect(new Set(signups.map((c) => byId.get(c.participant_id)?.external_id))).toEqual(new Set([...result.signedUp].map(externalId)));
    expect(signups).toHaveLength(result.signedUp.size);
    const clicks = (await clicksOf(db, fixture.id).select('kc.code', 'k.vid')) as Array<{ code: string; vid: string }>;
    expect(clicks.map((c) => `${c.code}|${c.vid}`).sort()).toEqual([...result.validClicks].sort());
  }

  it('keeps one referrer per participant, no self-referral, no cycle, and every event once', TIMEOUT, async () => {
    await fc.assert(
      fc.asyncProperty(fc.limitShrink(scenario, MAX_SHRINKS), async (input) => {
        const result = await run(input, { checkReplays: false });
        await checkInvariants(result);
      }),
      options(30),
    );
  });

  it('replaying any request already sent changes no row counts and repeats the first answer', TIMEOUT, async () => {
    await fc.assert(
      fc.asyncProperty(fc.limitShrink(scenario, MAX_SHRINKS), async (input) => {
        const result = await run(input, { checkReplays: true });
        // The reports read rollups, which must not count a replay either.
        const reports = () =>
          Promise.all(
            ['/v1/reports/summary', '/v1/reports/referrers'].map(async (path) => {
              const reply = await api.get(path, { auth: result.fixture.secret });
              expect(reply.status, reply.text).toBe(200);
              return reply.body as unknown;
            }),
          );
        const before = await reports();
        for (const entry of result.sent) await result.replay(entry);
        expect(await reports(), 'reports after replaying every request').toEqual(before);
        await checkInvariants(result);
      }),
      options(20),
    );
  });
});
