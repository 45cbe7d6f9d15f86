/**
 * `npx referral …`: operator commands that work on DATABASE_URL, or on the embedded
 * database while the server is stopped (PGlite allows one process at a time).
 */
import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig } from './config.ts';
import { createProgram, presentProgram } from './domain/programs.ts';
import { releaseDueRewards } from './domain/rewards.ts';
import { AppError } from './errors.ts';
import { parse } from './http/validate.ts';
import { ProgramCreateSchema } from '../../shared/schemas.ts';
import { createDb } from './storage/db.ts';
import { migrateLatest } from './storage/migrate.ts';

const USAGE = `Usage: referral <command>

Commands:
  migrate                                   bring the database schema up to date
  program create --name NAME --origin URL [--origin URL…] --landing URL [--json]
                                            create a program and print its keys (shown once)
  rewards release                           approve pending rewards whose hold period is over (for cron)

The database is DATABASE_URL when set, else the embedded one under DATA_DIR (./data).`;

type Out = { log: (line: string) => void; error: (line: string) => void };

export async function main(argv: string[], out: Out = { log: console.log, error: console.error }): Promise<number> {
  const [command, sub, ...rest] = argv;
  if (!command || command === 'help' || command === '--help') {
    out.log(USAGE);
    return command ? 0 : 1;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      out.error(error.message);
      return 1;
    }
    throw error;
  }
  const db = createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const ran = await migrateLatest(db);
    if (command === 'migrate') {
      out.log(ran.length ? `Ran ${ran.length} migration(s): ${ran.join(', ')}` : 'Already up to date');
      return 0;
    }
    if (command === 'rewards' && sub === 'release') {
      out.log(`Released ${await releaseDueRewards(db)} reward(s)`);
      return 0;
    }
    if (command === 'program' && sub === 'create') {
      const { values } = parseArgs({
        args: rest,
        options: {
          name: { type: 'string' },
          origin: { type: 'string', multiple: true },
          landing: { type: 'string' },
          json: { type: 'boolean' },
        },
      });
      const input = parse(ProgramCreateSchema, { name: values.name ?? '', origins: values.origin ?? [], landingUrl: values.landing ?? '' });
      const { program, keys } = await createProgram(db, input);
      if (values.json) {
        out.log(JSON.stringify({ program: presentProgram(program), keys }, null, 2));
      } else {
        out.log(`Program "${program.name}" (${program.slug}) created.`);
        out.log(`  publishable key: ${keys.publishable}`);
        out.log(`  secret key:      ${keys.secret}`);
        out.log('Keep the secret key safe: it is shown only this once.');
      }
      return 0;
    }
    out.error(`Unknown command: ${argv.join(' ')}\n\n${USAGE}`);
    return 1;
  } catch (error) {
    if (error instanceof AppError) {
      out.error(
        `${error.message}${
          error.fields
            ? `\n${Object.entries(error.fields)
                .map(([k, v]) => `  ${k}: ${v}`)
                .join('\n')}`
            : ''
        }`,
      );
      return 1;
    }
    if (error instanceof Error && 'code' in error && error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      out.error(`${error.message}\n\n${USAGE}`);
      return 1;
    }
    throw error;
  } finally {
    await db.destroy();
  }
}
