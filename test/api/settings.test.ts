/**
 * Program settings through the real app, on every database: GET and PATCH /v1/program,
 * defaults, normalization, merging over what is stored, and every bad value refused
 * with 422 and a message keyed on its field, leaving the settings as they were.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.ts';
import { DATABASES } from '../helpers/databases.ts';
import { buildProgram, DEFAULT_SETTINGS, type ProgramFixture } from '../helpers/factories.ts';
import { expectValidation } from '../helpers/steps.ts';
import { useTestApp } from '../helpers/suite.ts';

describe.each(DATABASES)('settings (%s)', (kind) => {
  let api: TestApp;
  useTestApp(kind, (suite) => ({ api } = suite));

  describe('GET/PATCH /v1/program settings', () => {
    let target: ProgramFixture;
    beforeAll(async () => {
      target = await buildProgram(api);
    });

    const settingsOf = async (fixture: ProgramFixture) => (await api.get('/v1/program', { auth: fixture.secret })).body.program.settings;

    it('returns the program with its default settings', async () => {
      const reply = await api.get('/v1/program', { auth: target.secret });
      expect(reply.status).toBe(200);
      expect(reply.body.program).toMatchObject({ id: target.id, slug: target.slug, settings: DEFAULT_SETTINGS });
    });

    it('updates settings, normalizing and keeping what was not sent', async () => {
      const rules = [
        { id: 'signup-credit', on: 'signup', to: 'both', reward: { kind: 'credit', amount: 500, currency: 'usd' } },
        {
          id: 'purchase-20',
          on: 'purchase',
          to: 'referrer',
          reward: { kind: 'cash', percent: 20 },
          when: { withinDays: 365 },
          holdDays: 30,
        },
      ];
      const reply = await api.patch(
        '/v1/program',
        {
          name: 'Renamed',
          settings: {
            cookieDays: 30,
            attribution: 'last',
            origins: ['https://a.example/path?q=1', 'http://b.example:8080'],
            rewardRules: rules,
            fraud: { velocityMax: 5 },
          },
        },
        { auth: target.secret },
      );
      expect(reply.status, reply.text).toBe(200);
      const expected = {
        ...DEFAULT_SETTINGS,
        origins: ['https://a.example', 'http://b.example:8080'],
        cookieDays: 30,
        attribution: 'last',
        rewardRules: [{ ...rules[0], reward: { kind: 'credit', amount: 500, currency: 'USD' } }, rules[1]],
        fraud: { velocityMax: 5, velocityMinutes: 60, disposableDomains: [] },
      };
      expect(reply.body.program.name).toBe('Renamed');
      expect(reply.body.program.settings).toMatchObject(expected);
      expect(await settingsOf(target)).toMatchObject(expected);

      // A later patch merges over what is stored.
      const second = await api.patch('/v1/program', { settings: { windowDays: 90 } }, { auth: target.secret });
      expect(second.status).toBe(200);
      expect(await settingsOf(target)).toMatchObject({ ...expected, windowDays: 90 });
    });

    const badPatches: Array<[string, Record<string, unknown>, Record<string, string>]> = [
      [
        'a fixed amount without currency',
        { rewardRules: [{ id: 'r1', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500 } }] },
        { 'settings.rewardRules.0.reward.currency': 'a fixed amount needs a currency' },
      ],
      [
        'a percent on a signup rule',
        { rewardRules: [{ id: 'r1', on: 'signup', to: 'referrer', reward: { kind: 'cash', percent: 10 } }] },
        { 'settings.rewardRules.0.reward.percent': 'percent rewards apply to purchases only' },
      ],
      [
        'duplicate rule ids',
        {
          rewardRules: [
            { id: 'dup', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 100, currency: 'EUR' } },
            { id: 'dup', on: 'purchase', to: 'referee', reward: { kind: 'credit', amount: 200, currency: 'EUR' } },
          ],
        },
        { 'settings.rewardRules.1.id': 'duplicate rule id "dup"' },
      ],
      [
        'amount and percent together',
        {
          rewardRules: [{ id: 'r1', on: 'purchase', to: 'referrer', reward: { kind: 'cash', amount: 100, percent: 10, currency: 'EUR' } }],
        },
        { 'settings.rewardRules.0.reward.percent': 'give amount or percent, not both' },
      ],
      [
        'a coupon reward without a coupon',
        { rewardRules: [{ id: 'r1', on: 'signup', to: 'referee', reward: { kind: 'coupon' } }] },
        { 'settings.rewardRules.0.reward.coupon': 'a coupon reward needs a coupon' },
      ],
      ['a bad URL in origins', { origins: ['https://ok.example', 'not a url'] }, { 'settings.origins.1': 'must be an http(s) URL' }],
      ['a non-http origin', { origins: ['ftp://files.example'] }, { 'settings.origins.0': 'must be an http(s) URL' }],
      ['a bad landing URL', { landingUrl: 'javascript:alert(1)' }, { 'settings.landingUrl': 'must be an http(s) URL' }],
    ];

    it.each(badPatches)('refuses %s with 422 and a field message', async (_label, settings, fields) => {
      const before = await settingsOf(target);
      const reply = await api.patch('/v1/program', { settings }, { auth: target.secret });
      expect(expectValidation(reply)).toEqual(fields);
      expect(await settingsOf(target)).toEqual(before);
    });

    const badValues: Array<[string, Record<string, unknown>, string]> = [
      ['cookieDays 0', { cookieDays: 0 }, 'settings.cookieDays'],
      ['cookieDays 1.5', { cookieDays: 1.5 }, 'settings.cookieDays'],
      ['windowDays "60"', { windowDays: '60' }, 'settings.windowDays'],
      ['attribution "middle"', { attribution: 'middle' }, 'settings.attribution'],
      [
        'an unknown rule event',
        { rewardRules: [{ id: 'r', on: 'visit', to: 'referrer', reward: { kind: 'credit', amount: 1, currency: 'EUR' } }] },
        'settings.rewardRules.0.on',
      ],
      [
        'a bad currency',
        { rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 1, currency: 'EURO' } }] },
        'settings.rewardRules.0.reward.currency',
      ],
      [
        'a negative amount',
        { rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: -1, currency: 'EUR' } }] },
        'settings.rewardRules.0.reward.amount',
      ],
      [
        'a fractional amount',
        { rewardRules: [{ id: 'r', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 1.5, currency: 'EUR' } }] },
        'settings.rewardRules.0.reward.amount',
      ],
      ['fraud.velocityMax 0', { fraud: { velocityMax: 0 } }, 'settings.fraud.velocityMax'],
    ];

    it.each(badValues)('refuses %s with 422 keyed on the field', async (_label, settings, field) => {
      const before = await settingsOf(target);
      const fields = expectValidation(await api.patch('/v1/program', { settings }, { auth: target.secret }));
      expect(Object.keys(fields)).toEqual([field]);
      expect(fields[field]?.length).toBeGreaterThan(0);
      expect(await settingsOf(target)).toEqual(before);
    });

    it('refuses unknown settings and a non-object body with 422', async () => {
      const unknown = expectValidation(await api.patch('/v1/program', { settings: { cookieDayz: 5 } }, { auth: target.secret }));
      expect(Object.keys(unknown)).toEqual(['settings']);
      expect(unknown.settings).toContain('cookieDayz');

      const list = await api.patch('/v1/program', [1, 2], { auth: target.secret });
      expectValidation(list);
      const emptyName = expectValidation(await api.patch('/v1/program', { name: '   ' }, { auth: target.secret }));
      expect(Object.keys(emptyName)).toEqual(['name']);
    });

    it('lists every bad rule at once', async () => {
      const fields = expectValidation(
        await api.patch(
          '/v1/program',
          {
            settings: {
              rewardRules: [
                { id: 'a', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500 } },
                { id: 'b', on: 'signup', to: 'referrer', reward: { kind: 'cash', percent: 5 } },
              ],
            },
          },
          { auth: target.secret },
        ),
      );
      expect(fields).toEqual({
        'settings.rewardRules.0.reward.currency': 'a fixed amount needs a currency',
        'settings.rewardRules.1.reward.percent': 'percent rewards apply to purchases only',
      });
    });
  });
});
