/**
 * The demo: on first start with an empty embedded database (DEMO=auto; DEMO=on on
 * PostgreSQL too), a demo program for the collector's own origin, a referrer whose
 * link is `/r/DEMO`, and a tiny shop under /demo/ that runs the real snippet against it.
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import Router from '@koa/router';
import type { Knex } from 'knex';
import type { Config } from './config.ts';
import type { Deps } from './deps.ts';
import { AppError, notFound } from './errors.ts';
import { packagePath } from './paths.ts';
import type { Logger } from './logger.ts';
import { findCode, primaryCode, referralLink } from './domain/codes.ts';
import { ensureParticipant } from './domain/participants.ts';
import { createProgram } from './domain/programs.ts';

export const DEMO_CODE = 'DEMO';
export const DEMO_REFERRER_ID = 'demo-referrer';
/**
 * The demo pages need the publishable key, and api_keys keeps hashes only. A
 * publishable key is public by design (every page embedding the snippet shows it),
 * so the demo's is kept in clear under this name in server_secrets.
 */
const DEMO_KEY_NAME = 'demo_publishable_key';

/** Where the banner goes: a terminal shows the secret key, anything else (a log collector) does not. */
export interface DemoOutput {
  isTTY?: boolean;
  write: (text: string) => unknown;
}

export interface DemoSeed {
  programId: string;
  link: string;
  landingUrl: string;
  dashboardUrl: string;
  keys: { publishable: string; secret: string };
}

/**
 * Whether this start may create the demo: DEMO=on always, DEMO=auto only on the
 * embedded database. A server on DATABASE_URL is production, where stdout goes to
 * log collectors: no demo program (and no key printed) unless asked for.
 */
export function wantsDemo(config: Pick<Config, 'demo' | 'databaseUrl'>): boolean {
  return config.demo === 'on' || (config.demo === 'auto' && !config.databaseUrl);
}

/**
 * Creates the demo program and referrer when wanted and the database has no program
 * yet; prints the link, the publishable key and the dashboard URL. The secret key is
 * printed once, like any program's, and only to a terminal: logs keep what they are given.
 */
export async function seedDemo(db: Knex, config: Config, logger: Logger, out: DemoOutput = process.stdout): Promise<DemoSeed | undefined> {
  if (!wantsDemo(config) || (await db('programs').first('id'))) return undefined;
  const landingUrl = `${config.publicUrl}/demo/`;
  const { program, keys } = await createProgram(db, {
    name: 'Demo shop',
    origins: [config.publicUrl],
    landingUrl,
    settings: {
      rewardRules: [
        { id: 'signup-credit', on: 'signup', to: 'referrer', reward: { kind: 'credit', amount: 500, currency: 'USD' } },
        { id: 'purchase-share', on: 'purchase', to: 'referrer', reward: { kind: 'cash', percent: 20 } },
      ],
    },
  });
  const code = await createDemoReferrer(db, program.id);
  await db.raw(`insert into server_secrets (name, value) values (?, ?) on conflict (name) do update set value = excluded.value`, [
    DEMO_KEY_NAME,
    keys.publishable,
  ]);
  const seed: DemoSeed = {
    programId: program.id,
    link: referralLink(config.publicUrl, code),
    landingUrl,
    dashboardUrl: `${config.publicUrl}/admin`,
    keys,
  };
  logger.info({ demo: { link: seed.link, landingUrl, dashboardUrl: seed.dashboardUrl, program: program.slug } }, 'demo program created');
  // Keys stay out of structured logs (the logger redacts them); the operator reads them here, once.
  out.write(
    [
      '',
      '  Demo program created',
      `    referral link    ${seed.link}`,
      `    demo shop        ${landingUrl}`,
      `    dashboard        ${seed.dashboardUrl}  (sign in with the secret key)`,
      `    publishable key  ${keys.publishable}`,
      ...(out.isTTY ? [`    secret key       ${keys.secret}  (shown once)`] : secretKeyNotPrinted(program.slug)),
      '',
      '',
    ].join('\n'),
  );
  return seed;
}

/**
 * Said instead of the secret key off a terminal. Keys are shown only when made, so
 * the way to one is a new key for the demo (`keys create`: on the stopped DATA_DIR,
 * or through the running collector with its ADMIN_TOKEN) or a program of your own.
 */
const secretKeyNotPrinted = (slug: string) => [
  '    secret key       not printed: this output is not a terminal, and logs keep what they are given.',
  `                     To sign in, make one: npx referral keys create --program ${slug}`,
  "                     (with the collector stopped, or with the collector's ADMIN_TOKEN set: it then goes through it),",
  '                     or create a program of your own: npx referral program create --name … --origin … --landing …',
];

/** The demo referrer, with the vanity code DEMO unless another program took it. */
async function createDemoReferrer(db: Knex, programId: string): Promise<string> {
  const fields = { externalId: DEMO_REFERRER_ID, name: 'Demo Referrer', email: 'referrer@example.com' };
  const create = (vanity?: string) =>
    db.transaction(async (trx) => {
      const { participant } = await ensureParticipant(trx, programId, fields, vanity);
      const code = await primaryCode(trx, participant.id);
      if (!code) throw new Error('the demo referrer has no code');
      return code.code;
    });
  if (await findCode(db, DEMO_CODE)) return create();
  try {
    return await create(DEMO_CODE);
  } catch (error) {
    // Another process seeding at the same moment took DEMO first.
    if (error instanceof AppError && error.code === 'code_taken') return create();
    throw error;
  }
}

/** The demo program's publishable key; undefined when this collector has no demo. */
export async function demoPublishableKey(db: Knex): Promise<string | undefined> {
  const row = (await db('server_secrets').where({ name: DEMO_KEY_NAME }).first('value')) as { value: string } | undefined;
  return row?.value;
}

/** The only files served under /demo/: a fixed list, so no path can reach anything else. */
const DEMO_FILES: Record<string, string> = {
  '': 'text/html; charset=utf-8', // index.html
  'index.html': 'text/html; charset=utf-8',
  'signup.html': 'text/html; charset=utf-8',
  'checkout.html': 'text/html; charset=utf-8',
  'demo.js': 'application/javascript; charset=utf-8',
  'demo.css': 'text/css; charset=utf-8',
};
const DEMO_DIR = pathToFileURL(packagePath('collector/public/demo/'));
/** Scripts and styles from this origin only: the pages have no inline script. */
const DEMO_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** GET /demo/* (the static shop) and GET /demo/config.json (the demo's publishable key). */
export function demoRoutes({ db }: Pick<Deps, 'db'>) {
  const router = new Router();
  // Relative links in the pages need the trailing slash. (The router matches /demo/ here too.)
  router.get('/demo', (ctx, next) => {
    if (ctx.path !== '/demo') return next();
    ctx.status = 301;
    ctx.redirect('/demo/');
  });
  router.get('/demo/config.json', async (ctx) => {
    const key = await demoPublishableKey(db);
    if (!key) throw notFound('Demo program');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { key };
  });
  router.get('/demo/{:file}', async (ctx) => {
    const file = ctx.params.file ?? '';
    const type = Object.hasOwn(DEMO_FILES, file) ? DEMO_FILES[file] : undefined;
    if (!type) throw notFound('Demo page');
    ctx.set('Content-Type', type);
    ctx.set('Content-Security-Policy', DEMO_CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = await readFile(new URL(file || 'index.html', DEMO_DIR));
  });
  return router;
}
