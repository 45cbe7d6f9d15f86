/**
 * The answers kept for replays live in conversion_answers (migration
 * 20261209000000): the migration carries stored answers over, both ways.
 */
import { describe, expect, it } from 'vitest';
import { migrateDown, migrateLatest } from '../../collector/src/storage/migrate.ts';
import { DATABASES } from '../helpers/databases.ts';
import { uniq } from '../helpers/factories.ts';
import { useTestDb } from '../helpers/suite.ts';

describe.each(DATABASES)('the conversion answers migration (%s)', (kind) => {
  const own = useTestDb(kind);

  it('moves each stored answer out of its conversion and back', async () => {
    const knex = own().db;
    const settings = JSON.stringify({ origins: ['https://a.example'], landingUrl: 'https://a.example/' });
    const [program] = (await knex('programs').insert({ name: 'A', slug: uniq('a'), settings }, ['id'])) as Array<{ id: string }>;
    const [person] = (await knex('participants').insert({ program_id: program?.id, external_id: 'ann' }, ['id'])) as Array<{ id: string }>;
    const conversion = (type: string, eventId: string) => ({
      program_id: program?.id,
      participant_id: person?.id,
      type,
      event_id: eventId,
      verified: true,
      source: 'server',
    });
    const [answered, silent] = (await knex('conversions').insert(
      [conversion('signup', 'e1'), conversion('purchase', 'e2')],
      ['id'],
    )) as Array<{
      id: string;
    }>;
    const answer = { conversion: { eventId: 'e1', externalId: 'ann' }, attribution: { status: 'none' }, rewards: [] };
    await knex('conversion_answers').insert({ conversion_id: answered?.id, response: JSON.stringify(answer) });

    expect(await migrateDown(knex)).toEqual(['20261209000000_conversion_answers']);
    expect(await knex.schema.hasTable('conversion_answers')).toBe(false);
    const before = await knex('conversions')
      .whereIn('id', [answered?.id, silent?.id] as string[])
      .orderBy('event_id')
      .select('event_id', 'response');
    expect(before).toEqual([
      { event_id: 'e1', response: answer },
      { event_id: 'e2', response: null },
    ]);

    expect(await migrateLatest(knex)).toEqual(['20261209000000_conversion_answers']);
    expect(await knex.schema.hasColumn('conversions', 'response')).toBe(false);
    expect(await knex('conversion_answers').select('conversion_id', 'response')).toEqual([
      { conversion_id: answered?.id, response: answer },
    ]);
    // An erased or deleted conversion takes its answer with it.
    await knex('conversions').where({ id: answered?.id }).delete();
    expect(await knex('conversion_answers').count({ n: '*' }).first()).toEqual({ n: 0 });
  });
});
