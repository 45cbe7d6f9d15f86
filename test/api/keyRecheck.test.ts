/**
 * POST /v1/conversions looks its secret key up through a cache of a few seconds, so
 * the batch's transaction checks every key again and reads its program as it is then.
 * What another collector process changes is written straight to the database here, so
 * this process's caches hear nothing of it.
 */
import { describe, expect, it } from 'vitest';
import type { ApiKeyCreateResponse } from '../../shared/responses.ts';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { useTestApp } from '../helpers/suite.ts';
import { buildParticipant, buildProgram, uniq } from '../helpers/factories.ts';
import { expectError, expectOk } from '../helpers/steps.ts';
import type { Knex } from 'knex';

describe.each(DATABASES)('secret keys checked again in the conversion batch (%s)', (kind) => {
  let api: TestApp;
  let db: Knex;
  useTestApp(kind, (suite) => ({ api, db } = suite));

  const signup = (app: TestApp, secret: string, code?: string) =>
    app.post(
      '/v1/conversions',
      { type: 'signup', eventId: uniq('ev-'), externalId: uniq('u-'), ...(code ? { referral: { code } } : {}) },
      { auth: secret },
    );

  it('refuses a key revoked by another process at once, and writes nothing', async () => {
    const program = await buildProgram(api);
    const extra = expectOk(await api.post<ApiKeyCreateResponse>('/v1/keys', { kind: 'secret' }, { auth: program.secret }), 201);
    // This process has used the key: its cache holds it.
    expectOk(await signup(api, extra.secret));
    const stored = uniq('idem-');
    const replayed = { type: 'signup', eventId: uniq('ev-'), externalId: uniq('u-') };
    expectOk(await api.post('/v1/conversions', replayed, { auth: extra.secret, headers: { 'idempotency-key': stored } }));
    const before = Number((await db('conversions').where({ program_id: program.id }).count({ n: '*' }))[0]?.n);

    // Revoked by another process (written straight to the database: this process's caches hear nothing).
    await db('api_keys').where({ id: extra.key.id }).update({ revoked_at: new Date() });
    const refused = await signup(api, extra.secret);
    expectError(refused, 401, 'unauthorized');
    // Nor does an answer stored under an Idempotency-Key come back for it.
    expectError(
      await api.post('/v1/conversions', replayed, { auth: extra.secret, headers: { 'idempotency-key': stored } }),
      401,
      'unauthorized',
    );
    expect(Number((await db('conversions').where({ program_id: program.id }).count({ n: '*' }))[0]?.n)).toBe(before);
    // The program's other key still works there.
    expectOk(await signup(api, program.secret));
  });

  it('grants rewards by the rules as they are now, not as the other process last read them', async () => {
    const program = await buildProgram(api);
    const referrer = await buildParticipant(api, program);
    expectOk(await signup(api, program.secret, referrer.code));
    const rules = [{ id: 'signup-cash', on: 'signup', to: 'referrer', reward: { kind: 'cash', amount: 700, currency: 'USD' } }];
    // Changed by another process.
    await db('programs')
      .where({ id: program.id })
      .update({ settings: db.raw(`settings || ?::jsonb`, [JSON.stringify({ rewardRules: rules })]) });
    const reply = expectOk(await signup(api, program.secret, referrer.code)) as { rewards: Array<{ amount: number }> };
    expect(reply.rewards.map((reward) => reward.amount)).toEqual([700]);
  });
});
