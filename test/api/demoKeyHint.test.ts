/**
 * Off a terminal the demo's secret key is not printed; the banner names the command
 * that makes one for the demo program, with the demo's real slug.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../collector/src/config.ts';
import { seedDemo } from '../../collector/src/demo.ts';
import { createLogger } from '../../collector/src/logger.ts';
import { openTestDb, type TestDb } from '../helpers/databases.ts';

describe('the demo banner off a terminal', () => {
  let testDb: TestDb | undefined;
  afterAll(() => testDb?.close());

  it('says how to make a secret key for the demo: npx referral keys create --program <its slug>', async () => {
    testDb = await openTestDb('pglite');
    let text = '';
    const seed = await seedDemo(testDb.db, loadConfig({ LOG_LEVEL: 'silent' }), createLogger('silent'), {
      isTTY: false,
      write: (chunk: string) => (text += chunk),
    });
    const { slug } = (await testDb.db('programs').where({ id: seed?.programId }).first('slug')) as { slug: string };
    expect(slug).toBe('demo-shop');
    expect(text).toContain(`To sign in, make one: npx referral keys create --program ${slug}\n`);
    expect(text).toContain("with the collector's ADMIN_TOKEN set");
    expect(text).not.toContain('sk_');
  });
});
