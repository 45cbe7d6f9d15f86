/**
 * Emails to referrers, on every database, through a real SMTP server on 127.0.0.1
 * (smtp-server, read back with mailparser): a new referral and an approved reward
 * (granted approved, approved by hand, released after its hold) each send exactly
 * one email to the right person, with the program's name in text and HTML, even when
 * the SMTP server refuses the first attempt; a repeated event queues nothing more;
 * the unsubscribe link in the email (posted through the real app) stops that kind of
 * email; nothing goes out when the program has the email off, without SMTP_URL, to a
 * recipient without an address or erased. The delivery loop is run by hand, its
 * backoff skipped by making the rows due.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailTransport, deliverDueEmails, type Mailer } from '../../collector/src/domain/emailDelivery.ts';
import { emailPayoutPaid, enqueueEmail } from '../../collector/src/domain/emails.ts';
import { findProgram, type ProgramRow } from '../../collector/src/domain/programs.ts';
import { releaseDueRewards } from '../../collector/src/domain/rewards.ts';
import { createUnsubscribeTokens } from '../../collector/src/domain/unsubscribeTokens.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, type ProgramFixture, uniq } from '../helpers/factories.ts';
import { makeDue } from '../helpers/rows.ts';
import { rawHeader, type ReceivedMail, startSmtpServer, type TestSmtpServer } from '../helpers/smtp.ts';
import { expectError, expectOk, expectValidation, listAllRewards, serverPurchase, serverSignup } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

const FROM = 'Acme Rewards <rewards@acme.example>';
const UNSUBSCRIBE_LINK = /https?:\/\/[^\s"<>]+\/v1\/emails\/unsubscribe\?token=[A-Za-z0-9_.-]+/;

describe.each(DATABASES)('emails to referrers (%s)', (kind) => {
  let db: Knex;
  let api: TestApp;
  let startApp: (env: Record<string, string>) => Promise<TestApp>;
  let smtp: TestSmtpServer;
  let mailer: Mailer;

  useTestApp(kind, (suite) => ({ db, api, startApp } = suite));
  beforeAll(async () => {
    smtp = await startSmtpServer();
    mailer = { transport: createMailTransport(smtp.url), publicUrl: api.url, tokens: createUnsubscribeTokens(db) };
  });
  afterAll(async () => {
    await smtp?.close();
  });

  const email = (name: string) => `${name}-${uniq()}@people.example`;

  /** A program sending the emails in `on`, with a credit for the new customer granted approved at once. */
  const emailProgram = (on: Record<string, boolean>, overrides: Record<string, unknown> = {}) =>
    buildProgram(api, {
      name: `Acme ${uniq()}`,
      settings: {
        emails: { from: FROM, on },
        rewardRules: [{ id: 'welcome', on: 'signup', to: 'referee', reward: { kind: 'credit', amount: 100, currency: 'USD' } }],
      },
      ...overrides,
    });

  const outbox = (p: ProgramFixture) => db('email_outbox').where({ program_id: p.id }).orderBy('created_at').orderBy('id').select('*');

  /** Every pending email due now (the test's stand-in for waiting out the backoff). */
  const skipBackoff = () => db('email_outbox').where({ status: 'pending' }).update({ next_attempt_at: db.fn.now() });

  /** A referrer with an address and a name, and a new customer they referred. */
  async function referral(p: ProgramFixture, referrer: { id: string; code: string }, name = 'Ann', address: string | null = email('ann')) {
    const friend = await buildParticipant(api, p, { name, ...(address ? { email: address } : {}) });
    await serverSignup(api, p, friend.externalId, referrer.code);
    return friend;
  }

  function expectProgramIn(mail: ReceivedMail, programName: string) {
    expect(mail.parsed.subject).toContain(programName);
    expect(mail.parsed.text).toContain(programName);
    expect(mail.parsed.html).toContain(programName);
  }

  it('a referral and approved rewards: one email each to the right person, even when the first attempt is refused', async () => {
    const p = await emailProgram(
      { referral: true, rewardApproved: true },
      {
        settings: {
          emails: { from: FROM, on: { referral: true, rewardApproved: true } },
          rewardRules: [
            { id: 'welcome', on: 'signup', to: 'referee', reward: { kind: 'credit', amount: 100, currency: 'USD' } },
            { id: 'bonus', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 500, currency: 'USD' }, holdDays: 30 },
            { id: 'sale', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 10 }, holdDays: 3 },
          ],
        },
      },
    );
    const name = p.program.name as string;
    const aliceAddress = email('alice');
    const annAddress = email('ann');
    const alice = await buildParticipant(api, p, { name: 'Alice', email: aliceAddress });
    const ann = await referral(p, alice, 'Ann', annAddress);

    // The referral (to Alice) and Ann's welcome credit, approved at once (to Ann), are queued with the signup.
    // (Both are stamped with the transaction's time: ordered by kind here.)
    expect((await outbox(p)).map((row) => [row.kind, row.participant_id, row.status]).sort()).toEqual([
      ['referral', alice.id, 'pending'],
      ['rewardApproved', ann.id, 'pending'],
    ]);
    // Alice's bonus waits out its hold; approving it by hand (forced) queues its email.
    const bonus = (await listAllRewards(api, p)).find((reward) => reward.rule === 'bonus')!;
    expect(bonus.status).toBe('pending');
    expectOk(await api.post(`/v1/rewards/${bonus.id}/approve`, { force: true, reason: 'early' }, { auth: p.secret }));
    expect(await outbox(p)).toHaveLength(3);

    // The SMTP server refuses every first attempt (550 at RCPT TO): nothing is sent, the error is kept.
    smtp.refuseNext('rcpt', 550, 3);
    expect(await deliverDueEmails(db, mailer)).toBe(3);
    expect(smtp.refused).toHaveLength(3);
    expect(smtp.to(aliceAddress)).toEqual([]);
    for (const row of await outbox(p)) {
      expect(row).toMatchObject({ status: 'pending', attempts: 1, sent_at: null });
      expect(row.last_error).toContain('550');
    }
    // Not due again before its backoff.
    expect(await deliverDueEmails(db, mailer)).toBe(0);

    await skipBackoff();
    expect(await deliverDueEmails(db, mailer)).toBe(3);
    for (const row of await outbox(p)) {
      expect(row).toMatchObject({ status: 'sent', attempts: 2, last_error: null });
      expect(row.message_id).toBeTruthy();
    }
    await skipBackoff();
    expect(await deliverDueEmails(db, mailer)).toBe(0);

    const toAlice = smtp.to(aliceAddress);
    const toAnn = smtp.to(annAddress);
    expect(toAlice).toHaveLength(2);
    expect(toAnn).toHaveLength(1);
    const referralMail = toAlice.find((mail) => mail.parsed.subject?.includes('signed up'))!;
    const bonusMail = toAlice.find((mail) => mail.parsed.subject?.includes('reward'))!;
    expect(referralMail.parsed.subject).toBe(`${name}: Ann just signed up through your link`);
    expect(referralMail.parsed.text).toContain('Hi Alice,');
    expect(referralMail.parsed.text).toContain('Ann joined through your referral link');
    expect(referralMail.parsed.text).toContain(alice.link);
    expect(referralMail.parsed.html).toContain('Ann just signed up through your link');
    expect(bonusMail.parsed.subject).toBe(`${name}: Your reward was approved: $5.00`);
    expect(toAnn[0]!.parsed.subject).toBe(`${name}: Your reward was approved: $1.00 in credit`);
    for (const mail of [...toAlice, ...toAnn]) {
      expectProgramIn(mail, name);
      expect(mail.parsed.from?.value).toEqual([{ name: 'Acme Rewards', address: 'rewards@acme.example' }]);
      // RFC 8058: the one-click unsubscribe link, the same one the text carries.
      const link = UNSUBSCRIBE_LINK.exec(mail.parsed.text ?? '')?.[0];
      expect(link?.startsWith(`${api.url}/v1/emails/unsubscribe?token=`)).toBe(true);
      expect(rawHeader(mail, 'List-Unsubscribe')).toBe(`<${link}>`);
      expect(rawHeader(mail, 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
      expect(mail.parsed.html).toContain(`href="${link}"`);
    }

    // A reward released after its hold (approveDue) sends one too.
    await serverPurchase(api, p, ann.externalId, `order-${uniq()}`, 5000);
    const sale = (await listAllRewards(api, p)).find((reward) => reward.rule === 'sale')!;
    await makeDue(db, [sale.id]);
    await releaseDueRewards(db);
    expect(await deliverDueEmails(db, mailer)).toBe(1);
    expect(smtp.to(aliceAddress)).toHaveLength(3);
    expect(smtp.to(aliceAddress)[2]!.parsed.subject).toBe(`${name}: Your reward was approved: $5.00`);
  });

  it('retries after a refused DATA (451), and a repeated event or enqueue stores one email', async () => {
    const p = await emailProgram({ referral: true });
    const aliceAddress = email('alice');
    const alice = await buildParticipant(api, p, { name: 'Alice', email: aliceAddress });
    const ann = await referral(p, alice);
    // The same signup again (a retry): answered from the first time, nothing more queued.
    await serverSignup(api, p, ann.externalId, alice.code);
    const queued = await outbox(p);
    expect(queued).toHaveLength(1);
    // Queuing the same event for the same person again stores nothing more.
    const program = (await findProgram(db, p.id)) as ProgramRow;
    const about = String(queued[0].event_key).slice('referral:'.length);
    for (let i = 0; i < 2; i++) {
      await db.transaction((trx) => enqueueEmail(trx, program, 'referral', { to: alice.id, about, data: { referred: ann.id } }));
    }
    expect(await outbox(p)).toHaveLength(1);

    smtp.refuseNext('data', 451, 1);
    expect(await deliverDueEmails(db, mailer)).toBe(1);
    expect(smtp.refused.at(-1)).toMatchObject({ stage: 'data', code: 451, to: [aliceAddress] });
    expect((await outbox(p))[0]).toMatchObject({ status: 'pending', attempts: 1 });
    expect((await outbox(p))[0].last_error).toContain('451');
    await skipBackoff();
    expect(await deliverDueEmails(db, mailer)).toBe(1);
    expect(smtp.to(aliceAddress)).toHaveLength(1);
    expect((await outbox(p))[0]).toMatchObject({ status: 'sent', attempts: 2 });
  });
  it("the email's unsubscribe link: GET only asks, POST (one-click) stops that kind of email; a changed token is a 400", async () => {
    const p = await emailProgram({ referral: true, rewardApproved: true });
    const aliceAddress = email('alice');
    const alice = await buildParticipant(api, p, { name: 'Alice', email: aliceAddress });
    await referral(p, alice);
    await deliverDueEmails(db, mailer);
    const [mail] = smtp.to(aliceAddress);
    const link = UNSUBSCRIBE_LINK.exec(mail!.parsed.text ?? '')![0];
    const path = link.slice(api.url.length);
    const preferences = async () =>
      ((await db('participants').where({ id: alice.id }).first('email_preferences')) as any).email_preferences;

    // GET shows a page with a button; it changes nothing (mail scanners follow links).
    const page = await api.get(path);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("form-action 'self'");
    expect(page.text).toContain(`Unsubscribe from ${p.program.name}`);
    expect(page.text).toContain(`<form method="post" action="${path}">`);
    expect(await preferences()).toBeNull();

    // A changed token is refused, on GET and POST alike.
    const token = new URL(link).searchParams.get('token')!;
    const changed = `${token.slice(0, 5)}${token[5] === 'A' ? 'B' : 'A'}${token.slice(6)}`;
    for (const bad of [changed, `${token}x`, token.split('.')[0]!, 'preview', '']) {
      const query = `/v1/emails/unsubscribe?token=${encodeURIComponent(bad)}`;
      const got = await api.get(query);
      expect(got.status, bad).toBe(400);
      expect(got.text).toContain('This unsubscribe link is not valid');
      expect((await api.post(query, undefined, { raw: 'List-Unsubscribe=One-Click', headers: FORM })).status, bad).toBe(400);
    }
    expect(await preferences()).toBeNull();

    // The mail client's one-click POST (RFC 8058), through the real app.
    const done = await api.post(path, undefined, { raw: 'List-Unsubscribe=One-Click', headers: FORM });
    expect(done.status).toBe(200);
    expect(done.text).toContain('You are unsubscribed');
    expect(await preferences()).toEqual({ referral: false });
    // Again: still fine, still off.
    expect((await api.post(path, undefined, { raw: 'List-Unsubscribe=One-Click', headers: FORM })).status).toBe(200);

    // Another referral: no email about it. A reward approved still comes (another kind).
    const before = smtp.to(aliceAddress).length;
    await referral(p, alice, 'Bea');
    expect((await outbox(p)).filter((row) => row.kind === 'referral')).toHaveLength(1);
    await db.transaction(async (trx) =>
      emailPayoutPaid(trx, (await findProgram(trx, p.id)) as ProgramRow, {
        id: randomUUID(),
        participant_id: alice.id,
        amount: 1,
        currency: 'USD',
      }),
    );
    expect(await outbox(p)).toHaveLength(3); // payoutPaid is off for this program
    const program = (await findProgram(db, p.id)) as ProgramRow;
    await db.transaction((trx) =>
      enqueueEmail(trx, program, 'rewardApproved', {
        to: alice.id,
        about: randomUUID(),
        data: { reward: { kind: 'cash', amount: 700, currency: 'EUR' } },
      }),
    );
    await deliverDueEmails(db, mailer);
    const after = smtp.to(aliceAddress).slice(before);
    expect(after.map((m) => m.parsed.subject)).toEqual([`${p.program.name}: Your reward was approved: €7.00`]);

    // The page's second button unsubscribes from everything; an email queued before is then skipped.
    const all = /<form method="post" action="([^"]+)"><button type="submit" class="quiet">/.exec(page.text)![1]!;
    await db.transaction((trx) =>
      enqueueEmail(trx, program, 'rewardApproved', {
        to: alice.id,
        about: randomUUID(),
        data: { reward: { kind: 'cash', amount: 100, currency: 'USD' } },
      }),
    );
    expect((await api.post(all.replace(/&amp;/g, '&'), undefined, { raw: '', headers: FORM })).status).toBe(200);
    expect(await preferences()).toEqual({ referral: false, rewardApproved: false, payoutPaid: false });
    await deliverDueEmails(db, mailer);
    expect(smtp.to(aliceAddress).length).toBe(before + 1);
    expect((await outbox(p)).at(-1)).toMatchObject({ status: 'skipped', last_error: 'the recipient unsubscribed' });
  });

  it('sends nothing when the email is off, without SMTP_URL, or to a recipient without an address or erased', async () => {
    // The program has only referral emails on: an approved reward sends none.
    const onlyReferrals = await emailProgram({ referral: true });
    const alice = await buildParticipant(api, onlyReferrals, { name: 'Alice', email: email('alice') });
    await referral(onlyReferrals, alice);
    expect((await outbox(onlyReferrals)).map((row) => row.kind)).toEqual(['referral']);

    // A program without settings.emails queues nothing.
    const quiet = await buildProgram(api);
    const carol = await buildParticipant(api, quiet, { email: email('carol') });
    await referral(quiet, carol);
    expect(await outbox(quiet)).toEqual([]);

    // A referrer without an address, or erased, gets nothing.
    const p = await emailProgram({ referral: true, rewardApproved: true });
    const noAddress = await buildParticipant(api, p, { name: 'Nobody' });
    await referral(p, noAddress, 'Ann', null);
    expect(await outbox(p)).toEqual([]);
    // (An erased referrer's codes are disabled, so no referral reaches them; queued by hand, nothing is stored either.)
    const erased = await buildParticipant(api, p, { email: email('erased') });
    expect((await api.request('DELETE', `/v1/participants/${erased.externalId}`, undefined, { auth: p.secret })).status).toBe(204);
    const program = (await findProgram(db, p.id)) as ProgramRow;
    await db.transaction((trx) =>
      enqueueEmail(trx, program, 'referral', { to: erased.id, about: randomUUID(), data: { referred: erased.id } }),
    );
    expect(await outbox(p)).toEqual([]);

    // Without SMTP_URL the due email is skipped: nothing is sent, then or once a server is set.
    const daveAddress = email('dave');
    const dave = await buildParticipant(api, p, { email: daveAddress });
    await referral(p, dave, 'Ann', null);
    await deliverDueEmails(db, { ...mailer, transport: null });
    expect(await outbox(p)).toMatchObject([{ kind: 'referral', status: 'skipped', last_error: 'SMTP_URL is not set', attempts: 0 }]);
    await skipBackoff();
    await deliverDueEmails(db, mailer);
    expect(smtp.to(daveAddress)).toEqual([]);

    // Erased after the email was queued: skipped at its turn.
    const erinAddress = email('erin');
    const erin = await buildParticipant(api, p, { email: erinAddress });
    await referral(p, erin, 'Ann', null);
    expect((await api.request('DELETE', `/v1/participants/${erin.externalId}`, undefined, { auth: p.secret })).status).toBe(204);
    await deliverDueEmails(db, mailer);
    expect((await outbox(p)).at(-1)).toMatchObject({ participant_id: erin.id, status: 'skipped', last_error: 'the recipient was erased' });
    expect(smtp.to(erinAddress)).toEqual([]);
  });

  it('escapes names in the HTML: a referred "<script>" and the program name', async () => {
    const p = await emailProgram({ referral: true }, { name: `Tom & Jerry's <Shop> ${uniq()}` });
    const name = p.program.name as string;
    const aliceAddress = email('alice');
    const alice = await buildParticipant(api, p, { name: 'Alice "Al" <b>', email: aliceAddress });
    await referral(p, alice, '<script>alert("x")</script>');
    await deliverDueEmails(db, mailer);
    const [mail] = smtp.to(aliceAddress);
    const html = mail!.parsed.html as string;
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<b>');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; just signed up through your link');
    expect(html).toContain('Hi Alice &quot;Al&quot; &lt;b&gt;,');
    expect(html).toContain(name.replace('&', '&amp;').replace("'", '&#39;').replace('<', '&lt;').replace('>', '&gt;'));
    expect(mail!.parsed.subject).toBe(`${name}: <script>alert("x")</script> just signed up through your link`);
    expect(mail!.parsed.text).toContain('<script>alert("x")</script> joined through your referral link');
    expect(mail!.parsed.text).toContain(name);
  });

  it('payout paid: the template through the outbox, once per payout item', async () => {
    const p = await emailProgram({ payoutPaid: true });
    const aliceAddress = email('alice');
    const alice = await buildParticipant(api, p, { name: 'Alice', email: aliceAddress });
    const program = (await findProgram(db, p.id)) as ProgramRow;
    const item = { id: randomUUID(), participant_id: alice.id, amount: 5000, currency: 'USD', reference: 'BATCH-7' };
    await db.transaction((trx) => emailPayoutPaid(trx, program, item));
    await db.transaction((trx) => emailPayoutPaid(trx, program, item)); // the item paid again
    expect(await outbox(p)).toMatchObject([{ kind: 'payoutPaid', event_key: `payoutPaid:${item.id}`, participant_id: alice.id }]);
    smtp.refuseNext('rcpt', 421, 1);
    await deliverDueEmails(db, mailer);
    await skipBackoff();
    await deliverDueEmails(db, mailer);
    const mails = smtp.to(aliceAddress);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.parsed.subject).toBe(`${p.program.name}: We paid you $50.00`);
    expect(mails[0]!.parsed.text).toContain(`${p.program.name} sent you $50.00 for your referrals (reference BATCH-7).`);
    expectProgramIn(mails[0]!, p.program.name);
  });

  it('a payout marked paid through the API: one email to the referrer, however often it is marked', async () => {
    const p = await emailProgram(
      { payoutPaid: true },
      {
        settings: {
          emails: { from: FROM, on: { payoutPaid: true } },
          rewardRules: [{ id: 'cash', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 1000, currency: 'USD' } }],
        },
      },
    );
    const aliceAddress = email('alice');
    const alice = await buildParticipant(api, p, { name: 'Alice', email: aliceAddress });
    expectOk(
      await api.patch(`/v1/participants/${alice.externalId}`, { payout: { method: 'paypal', email: aliceAddress } }, { auth: p.secret }),
    );
    await referral(p, alice);
    await referral(p, alice, 'Bea');
    const payout = expectOk(await api.post('/v1/payouts', {}, { auth: p.secret }), 201);
    expect(payout.items).toHaveLength(1);
    expect(await outbox(p)).toEqual([]);
    expectOk(await api.post(`/v1/payouts/${payout.id}/paid`, { reference: 'PP-123' }, { auth: p.secret }));
    expectOk(await api.post(`/v1/payouts/${payout.id}/paid`, {}, { auth: p.secret }));
    expect(await outbox(p)).toMatchObject([
      { kind: 'payoutPaid', participant_id: alice.id, event_key: `payoutPaid:${payout.items[0].id}` },
    ]);
    await deliverDueEmails(db, mailer);
    const mails = smtp.to(aliceAddress);
    expect(mails.map((mail) => mail.parsed.subject)).toEqual([`${p.program.name}: We paid you $20.00`]);
    expect(mails[0]!.parsed.text).toContain('(reference PP-123)');
  });

  it('settings.emails is validated and merged; GET /v1/emails and the previews', async () => {
    const p = await buildProgram(api, { name: `Preview ${uniq()}` });
    for (const from of ['not an address', 'Acme <no-at-sign>', 'Acme\r\nBcc: x@y.example <a@b.example>', 'a@b.example, c@d.example']) {
      const fields = expectValidation(await api.patch('/v1/program', { settings: { emails: { from } } }, { auth: p.secret }));
      expect(fields['settings.emails.from'], from).toBe('must be an email address or "Name <email>"');
    }
    const unknown = expectValidation(
      await api.patch('/v1/program', { settings: { emails: { from: FROM, on: { birthday: true } } } }, { auth: p.secret }),
    );
    expect(Object.keys(unknown)).toEqual(['settings.emails.on']);
    expectOk(await api.patch('/v1/program', { settings: { emails: { from: FROM, on: { referral: true } } } }, { auth: p.secret }));
    const merged = expectOk(await api.patch('/v1/program', { settings: { emails: { on: { payoutPaid: true } } } }, { auth: p.secret }));
    expect(merged.program.settings.emails).toEqual({ from: FROM, on: { referral: true, payoutPaid: true } });

    expect(expectOk(await api.get('/v1/emails', { auth: p.secret }))).toEqual({
      smtpConfigured: false,
      from: FROM,
      templates: [
        { template: 'referral', on: true },
        { template: 'rewardApproved', on: false },
        { template: 'payoutPaid', on: true },
      ],
    });
    const withSmtp = await startApp({ SMTP_URL: smtp.url });
    expect(expectOk(await withSmtp.get('/v1/emails', { auth: p.secret })).smtpConfigured).toBe(true);

    for (const template of ['referral', 'rewardApproved', 'payoutPaid']) {
      const preview = expectOk(await api.get(`/v1/emails/preview/${template}`, { auth: p.secret }));
      expect(Object.keys(preview).sort()).toEqual(['html', 'subject', 'text']);
      expect(preview.subject.startsWith(`${p.program.name}: `)).toBe(true);
      expect(preview.text).toContain(p.program.name);
      expect(preview.html).toContain(p.program.name);
      expect(preview.html).toContain('<!doctype html>');
      expect(preview.text).toContain('Unsubscribe from these emails: ');
    }
    expect(expectOk(await api.get('/v1/emails/preview/referral', { auth: p.secret })).subject).toBe(
      `${p.program.name}: Ann just signed up through your link`,
    );
    expectError(await api.get('/v1/emails/preview/birthday', { auth: p.secret }), 404, 'not_found');
    expect((await api.get('/v1/emails/preview/referral')).status).toBe(401);
    expect((await api.get('/v1/emails/preview/referral', { auth: p.publishable })).status).toBe(401);
  });
});

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
