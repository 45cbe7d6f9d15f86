/**
 * A referral that trips several holds at once is held for the first of them, in one
 * order: velocity, then duplicate identity, then a disposable email (fraud.ts
 * `reviewReason`), on every database.
 */
import { describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq } from '../helpers/factories.ts';
import { browserEvent, conversion, decisions, referrals } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

describe.each(DATABASES)('the reason a referral is held (%s)', (kind) => {
  let api: TestApp;
  useTestApp(kind, (suite) => ({ api } = suite));

  it('velocity before duplicate identity before a disposable email', async () => {
    const fixture = await buildProgram(api, {
      settings: { fraud: { velocityMax: 1, velocityMinutes: 60, disposableDomains: ['throwaway.test'] } },
    });
    const referrer = await buildParticipant(api, fixture);
    const email = 'same.person@throwaway.test';
    // The browser's events share one address (the test client's): the second one is past velocityMax.
    const [first, second] = [uniq('first-'), uniq('second-')];
    await browserEvent(api, fixture, { userId: first, email, code: referrer.code });
    await browserEvent(api, fixture, { userId: second, email, code: referrer.code });
    // Server signups carry no address: no velocity.
    const third = await conversion(api, fixture, { externalId: uniq('third-'), email, code: referrer.code });
    const fourth = await conversion(api, fixture, { externalId: uniq('fourth-'), email: 'other@throwaway.test', code: referrer.code });
    const fifth = await conversion(api, fixture, { externalId: uniq('fifth-'), email: 'fifth@example.org', code: referrer.code });

    const byUser = new Map((await referrals(api, fixture)).data.map((referral) => [referral.referred, referral]));
    expect(byUser.get(first)).toMatchObject({ status: 'held', reason: 'disposable_email' });
    expect(byUser.get(second)).toMatchObject({ status: 'held', reason: 'velocity' });
    expect(third.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId, held: true, reason: 'duplicate_identity' });
    expect(fourth.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId, held: true, reason: 'disposable_email' });
    expect(fifth.attribution).toEqual({ status: 'attributed', referrer: referrer.externalId });
    const held = await decisions(api, fixture, 'outcome=held');
    expect(held.map((decision) => decision.reason).sort()).toEqual([
      'disposable_email',
      'disposable_email',
      'duplicate_identity',
      'velocity',
    ]);
  });
});
