/**
 * Currencies are ISO 4217 codes (DESIGN "Trust rules"): `XYZ` is three letters but no
 * money, and a reward or revenue total in it would be nonsense. Every way money
 * enters — reward rules, server conversions, browser events, Stripe — refuses an
 * unknown code with a 4xx and stores nothing; known codes are upper-cased.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildParticipant, buildProgram, uniq, vidFor } from '../helpers/factories.ts';
import { countRows } from '../helpers/rows.ts';
import { expectError, expectOk } from '../helpers/steps.ts';
import { checkoutSession, deliverStripe, invoice, sid, stripeEvent } from '../helpers/stripe.ts';
import { useTestApp, type Suite } from '../helpers/suite.ts';

/** Three letters, not ISO 4217 (XTS and XXX are ISO's test and "no currency" codes, which Intl does not list either). */
const UNKNOWN = ['XYZ', 'ABC', 'QQQ', 'usx', 'XXX', 'XTS'];
/** Known codes as callers may write them, and how they are stored. */
const KNOWN: Array<[given: string, stored: string]> = [
  ['USD', 'USD'],
  ['eur', 'EUR'],
  ['JPY', 'JPY'],
  ['chf', 'CHF'],
];
const ISO_MESSAGE = /ISO 4217 currency code such as USD or EUR/;

const rule = (currency: string) => ({ id: 'signup', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 100, currency } });

describe.each(DATABASES)('currencies (%s)', (kind) => {
  let suite: Suite;
  useTestApp(kind, (s) => (suite = s));

  describe.each(UNKNOWN)('%s is refused', (code) => {
    it('in a reward rule, at POST /v1/programs and PATCH /v1/program', async () => {
      const created = await suite.api.post(
        '/v1/programs',
        {
          name: `Program ${uniq()}`,
          origins: ['https://shop.example'],
          landingUrl: 'https://shop.example/',
          settings: { rewardRules: [rule(code)] },
        },
        { auth: ADMIN_TOKEN },
      );
      expectError(created, 422, 'validation_failed');
      expect(created.body.error.fields['settings.rewardRules.0.reward.currency']).toMatch(ISO_MESSAGE);

      const p = await buildProgram(suite.api);
      const patched = await suite.api.patch('/v1/program', { settings: { rewardRules: [rule(code)] } }, { auth: p.secret });
      expectError(patched, 422, 'validation_failed');
      expect(patched.body.error.fields['settings.rewardRules.0.reward.currency']).toMatch(ISO_MESSAGE);
    });

    it('in a server purchase (POST /v1/conversions)', async () => {
      const p = await buildProgram(suite.api);
      const reply = await suite.api.post(
        '/v1/conversions',
        { type: 'purchase', eventId: uniq('order-'), externalId: 'buyer', amount: 1000, currency: code },
        { auth: p.secret },
      );
      expectError(reply, 422, 'validation_failed');
      expect(reply.body.error.fields.currency).toMatch(ISO_MESSAGE);
      expect(await countRows(suite.db, 'conversions', { program_id: p.id })).toBe(0);
    });

    it('in a browser purchase (POST /v1/events)', async () => {
      const p = await buildProgram(suite.api);
      const reply = await suite.api.post('/v1/events', {
        key: p.publishable,
        type: 'purchase',
        eventId: uniq('evt-'),
        vid: vidFor('buyer'),
        user: { id: 'buyer' },
        order: { id: uniq('order-'), amount: 1000, currency: code },
      });
      expectError(reply, 422, 'validation_failed');
      expect(reply.body.error.fields['order.currency']).toMatch(ISO_MESSAGE);
      expect(await countRows(suite.db, 'conversions', { program_id: p.id })).toBe(0);
    });

    it('in a Stripe checkout session and invoice: 422 invalid_stripe_payload, nothing stored', async () => {
      const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
      const p = await buildProgram(suite.api, { settings: { stripe: { webhookSecret } } });
      const events = [
        stripeEvent('checkout.session.completed', checkoutSession({ currency: code.toLowerCase(), metadata: { externalId: 'buyer' } })),
        stripeEvent(
          'invoice.paid',
          invoice({ customer: sid('cus_'), currency: code.toLowerCase(), subscriptionMetadata: { externalId: 'subscriber' } }),
        ),
      ];
      for (const event of events) {
        const reply = await deliverStripe(suite.api, p.slug, event, { secret: webhookSecret });
        expectError(reply, 422, 'invalid_stripe_payload');
      }
      expect(await countRows(suite.db, 'conversions', { program_id: p.id })).toBe(0);
    });
  });

  it.each(KNOWN)('%s is accepted everywhere and stored as %s', async (given, stored) => {
    const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
    const p = await buildProgram(suite.api, { settings: { rewardRules: [rule(given)], stripe: { webhookSecret } } });
    expect(p.program.settings.rewardRules[0]?.reward.currency).toBe(stored);
    await buildParticipant(suite.api, p, { externalId: 'buyer' });

    const server = expectOk(
      await suite.api.post(
        '/v1/conversions',
        { type: 'purchase', eventId: uniq('order-'), externalId: 'buyer', amount: 1000, currency: given },
        { auth: p.secret },
      ),
    );
    expect(server.conversion.currency).toBe(stored);

    const browserOrder = uniq('order-');
    expectOk(
      await suite.api.post('/v1/events', {
        key: p.publishable,
        type: 'purchase',
        eventId: uniq('evt-'),
        vid: vidFor('buyer'),
        user: { id: 'buyer' },
        order: { id: browserOrder, amount: 1000, currency: given },
      }),
      202,
    );

    const session = checkoutSession({ currency: given.toLowerCase(), metadata: { externalId: 'buyer' } });
    const stripe = await deliverStripe(suite.api, p.slug, stripeEvent('checkout.session.completed', session), { secret: webhookSecret });
    expect(stripe.status, stripe.text).toBe(200);
    expect(stripe.body.result.conversion.currency).toBe(stored);

    const purchases = await suite.db('conversions').where({ program_id: p.id, type: 'purchase' }).select('event_id', 'currency');
    expect(purchases.map((row) => row.currency)).toEqual([stored, stored, stored]);
  });
});
