/**
 * The CLI's commands: their flags, what each does on the database, and, for those the
 * operator API can do too, the same request to a running collector. Results print the
 * same either way.
 */
import type { Knex } from 'knex';
import type { ApiKeyCreateResponse } from '../../../shared/responses.ts';
import { ProgramCreateSchema } from '../../../shared/schemas.ts';
import { createApiKeyForSlug, presentApiKey } from '../domain/keys.ts';
import { createProgram, presentProgram } from '../domain/programs.ts';
import { releaseDueRewards } from '../domain/rewards.ts';
import { parse } from '../http/validate.ts';
import { migrateLatest } from '../storage/migrate.ts';

export type Values = Record<string, string | boolean | string[] | undefined>;
export type OptionSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

export interface Out {
  log: (line: string) => void;
  error: (line: string) => void;
}

export interface Command {
  /** As typed: `program create`. */
  name: string;
  usage: string;
  options: OptionSpec;
  /** Problems with the flags alone (a required one missing), said in flag terms. */
  check?: (values: Values) => string[];
  /** Which flag each request field comes from, to say validation errors in flag terms. */
  flagOf?: Record<string, string>;
  /** Runs on the database (migrated first, except by `migrate` itself). */
  run: (db: Knex, values: Values, out: Out) => Promise<void>;
  /** The same through a running collector's operator API (ADMIN_TOKEN). */
  remote?: {
    request: (values: Values) => { path: string; body: unknown };
    print: (body: unknown, values: Values, out: Out) => void;
  };
  /** Without a remote form: why there is nothing to do while the collector runs. */
  whileCollectorRuns?: string;
}

const text = (values: Values, name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
const list = (values: Values, name: string) => (Array.isArray(values[name]) ? (values[name] as string[]) : []);
const required = (values: Values, flags: Array<[string, string]>) =>
  flags
    .filter(([name]) => values[name] === undefined || (Array.isArray(values[name]) && !list(values, name).length))
    .map(([name, what]) => `--${name} ${what} is required`);

interface ProgramCreated {
  program: { name: string; slug: string };
  keys: { publishable: string; secret: string };
}

function printProgram(created: ProgramCreated, values: Values, out: Out): void {
  if (values.json) {
    out.log(JSON.stringify(created, null, 2));
    return;
  }
  out.log(`Program "${created.program.name}" (${created.program.slug}) created.`);
  out.log(`  publishable key: ${created.keys.publishable}`);
  out.log(`  secret key:      ${created.keys.secret}`);
  out.log('Keep the secret key safe: it is shown only this once.');
}

function printKey(created: ApiKeyCreateResponse, values: Values, out: Out): void {
  if (values.json) {
    out.log(JSON.stringify(created, null, 2));
    return;
  }
  out.log(`New ${created.key.kind} key for program "${text(values, 'program')}": ${created.secret}`);
  out.log(
    created.key.kind === 'secret'
      ? 'Keep it safe: it is shown only this once. It signs in to the dashboard and calls the server API; revoke a lost one there or with DELETE /v1/keys/:id.'
      : 'Put it in the script tag (data-key); it is public by design.',
  );
}

const kindOf = (values: Values) => (text(values, 'kind') ?? 'secret') as 'secret' | 'publishable';

export const COMMANDS: Command[] = [
  {
    name: 'migrate',
    usage: 'migrate                                   bring the database schema up to date',
    options: {},
    run: async (db, _values, out) => {
      const ran = await migrateLatest(db);
      out.log(ran.length ? `Ran ${ran.length} migration(s): ${ran.join(', ')}` : 'Already up to date');
    },
    whileCollectorRuns:
      'It migrated the database when it started, so there is nothing to do; to run `migrate` yourself, stop the collector first.',
  },
  {
    name: 'program create',
    usage: `program create --name NAME --origin URL [--origin URL…] --landing URL [--json]
                                            create a program and print its keys (shown once)`,
    options: {
      name: { type: 'string' },
      origin: { type: 'string', multiple: true },
      landing: { type: 'string' },
      json: { type: 'boolean' },
    },
    check: (values) =>
      required(values, [
        ['name', 'NAME'],
        ['origin', 'URL (the site that embeds the script; repeat it for several)'],
        ['landing', 'URL (where referral links lead)'],
      ]),
    flagOf: { name: '--name', origins: '--origin', landingUrl: '--landing' },
    run: async (db, values, out) => {
      const input = parse(ProgramCreateSchema, programInput(values));
      const { program, keys } = await createProgram(db, input);
      printProgram({ program: presentProgram(program), keys }, values, out);
    },
    remote: {
      request: (values) => ({ path: '/v1/programs', body: programInput(values) }),
      print: (body, values, out) => printProgram(body as ProgramCreated, values, out),
    },
  },
  {
    name: 'keys create',
    usage: `keys create --program SLUG [--kind secret|publishable] [--json]
                                            a new key for a program (shown once): replaces a lost secret key`,
    options: { program: { type: 'string' }, kind: { type: 'string' }, json: { type: 'boolean' } },
    check: (values) => [
      ...required(values, [['program', 'SLUG (the program\'s slug, e.g. "demo-shop")']]),
      ...(['secret', 'publishable', undefined].includes(text(values, 'kind')) ? [] : ['--kind must be "secret" or "publishable"']),
    ],
    flagOf: { kind: '--kind' },
    run: async (db, values, out) => {
      const { row, key } = await createApiKeyForSlug(db, text(values, 'program') ?? '', kindOf(values));
      printKey({ key: presentApiKey(row), secret: key }, values, out);
    },
    remote: {
      request: (values) => ({
        path: `/v1/programs/${encodeURIComponent(text(values, 'program') ?? '')}/keys`,
        body: { kind: kindOf(values) },
      }),
      print: (body, values, out) => printKey(body as ApiKeyCreateResponse, values, out),
    },
  },
  {
    name: 'rewards release',
    usage: 'rewards release                           approve pending rewards whose hold period is over (for cron)',
    options: {},
    run: async (db, _values, out) => {
      out.log(`Released ${await releaseDueRewards(db)} reward(s)`);
    },
    whileCollectorRuns:
      'It releases due rewards itself every minute, so there is nothing to do; stop the collector first to run this command against its files.',
  },
];

function programInput(values: Values) {
  return { name: text(values, 'name') ?? '', origins: list(values, 'origin'), landingUrl: text(values, 'landing') ?? '' };
}

/**
 * Validation errors in flag terms: `origins.1` is the second --origin, named with its
 * value; fields no flag sets keep their names.
 */
export function flagProblems(command: Command, values: Values, fields: Record<string, string>): string[] {
  return Object.entries(fields).map(([field, message]) => {
    if (field === '_') return message;
    const [head = field, index] = field.split('.');
    const flag = command.flagOf?.[head];
    if (!flag) return `${field}: ${message}`;
    const value = index === undefined ? text(values, flag.slice(2)) : list(values, flag.slice(2))[Number(index)];
    return `${flag}${value === undefined ? '' : ` ${value}`}: ${message}`;
  });
}
