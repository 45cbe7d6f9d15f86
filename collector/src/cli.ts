/**
 * `npx referral …`: operator commands (cli/commands.ts) on DATABASE_URL, or on the
 * embedded database under DATA_DIR. The embedded database has one writer: the command
 * holds DATA_DIR's lock while it runs, and when a collector holds it, the command goes
 * through that collector or is refused (cli/throughCollector.ts). Errors are said in
 * the CLI's terms: flags, not request fields; a paragraph, not a stack.
 */
import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig } from './config.ts';
import { AppError } from './errors.ts';
import { connectionReason, describeDatabaseUrl, explainDataDirError, StartupError } from './startupErrors.ts';
import { connectDatabase } from './storage/connect.ts';
import { acquireDataDirLock, DataDirLocked } from './storage/dataDirLock.ts';
import { createDb } from './storage/db.ts';
import { migrateLatest } from './storage/migrate.ts';
import { COMMANDS, type Command, flagProblems, type Out, type Values } from './cli/commands.ts';
import { CliError, runThroughCollector } from './cli/throughCollector.ts';

const USAGE = `Usage: referral <command>

Commands:
${COMMANDS.map((command) => `  ${command.usage}`).join('\n')}

The database is DATABASE_URL when set, else the embedded one under DATA_DIR (./data).
While a collector runs on DATA_DIR, program create and keys create go through it
(set ADMIN_TOKEN to its token); the other commands wait for it to stop.`;

/** Wrong command line: said with the usage. */
class UsageError extends Error {}

interface Invocation {
  command: Command;
  values: Values;
  line: string;
}

export async function main(argv: string[], out: Out = { log: console.log, error: console.error }): Promise<number> {
  let invocation: Invocation | undefined;
  try {
    if (!argv.length || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
      out.log(USAGE);
      return argv.length ? 0 : 1;
    }
    invocation = parseCommandLine(argv);
    if (invocation.values.help) {
      out.log(`Usage: referral ${invocation.command.usage}`);
      return 0;
    }
    await execute(invocation, loadConfig(), out);
    return 0;
  } catch (error) {
    const message = explain(error, invocation);
    if (message === undefined) throw error;
    out.error(message);
    return 1;
  }
}

function parseCommandLine(argv: string[]): Invocation {
  const command = COMMANDS.find((candidate) => candidate.name === argv.slice(0, candidate.name.split(' ').length).join(' '));
  if (!command) throw new UsageError(`Unknown command: ${argv.join(' ')}`);
  const args = argv.slice(command.name.split(' ').length);
  let values: Values;
  try {
    values = parseArgs({ args, options: { ...command.options, help: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // ERR_PARSE_ARGS_UNKNOWN_OPTION, …_INVALID_OPTION_VALUE (a flag without its value), …_UNEXPECTED_POSITIONAL
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      throw new UsageError(`${(error as Error).message}`, { cause: command });
    throw error;
  }
  const problems = values.help ? [] : (command.check?.(values) ?? []);
  if (problems.length) throw new UsageError(problems.join('\n'), { cause: command });
  return { command, values, line: [command.name, ...args].join(' ') };
}

async function execute({ command, values, line }: Invocation, config: Config, out: Out): Promise<void> {
  if (config.databaseUrl) return onDatabase(command, values, config, out);
  let lock: Awaited<ReturnType<typeof acquireDataDirLock>>;
  try {
    lock = await acquireDataDirLock(config.dataDir, {
      role: 'cli',
      command: line,
      onTakeover: (previous, reason) => out.error(`Took over a stale lock on ${config.dataDir} (pid ${previous?.pid ?? '?'}: ${reason}).`),
    });
  } catch (error) {
    if (error instanceof DataDirLocked) return runThroughCollector(command, values, error, config.adminToken, out);
    throw explainDataDirError(error, config.dataDir);
  }
  try {
    await onDatabase(command, values, config, out);
  } finally {
    lock.release();
  }
}

async function onDatabase(command: Command, values: Values, config: Config, out: Out): Promise<void> {
  const db = createDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (config.databaseUrl) {
      const { host, port } = describeDatabaseUrl(config.databaseUrl);
      await connectDatabase(db, {
        databaseUrl: config.databaseUrl,
        timeoutS: config.databaseConnectTimeoutS,
        onRetry: ({ error, delayMs }) =>
          out.error(
            `PostgreSQL at ${host}:${port} is not reachable yet (${connectionReason(error, host)}); retrying in ${Math.ceil(delayMs / 1000)} s…`,
          ),
      });
    }
    if (command.name !== 'migrate') await migrateLatest(db);
    await command.run(db, values, out);
  } finally {
    await db.destroy();
  }
}

/** What to tell the operator about `error`; undefined for a bug (thrown on, with its stack). */
function explain(error: unknown, invocation: Invocation | undefined): string | undefined {
  if (error instanceof UsageError) {
    const command = error.cause as Command | undefined;
    return `${error.message}\n\n${command ? `Usage: referral ${command.usage}` : USAGE}`;
  }
  if (error instanceof ConfigError || error instanceof StartupError || error instanceof CliError) return error.message;
  if (error instanceof AppError) {
    if (error.code === 'validation_failed' && error.fields && invocation) {
      const problems = flagProblems(invocation.command, invocation.values, error.fields);
      return `Invalid options for \`referral ${invocation.command.name}\`:\n${problems.map((problem) => `  ${problem}`).join('\n')}\n\nUsage: referral ${invocation.command.usage}`;
    }
    return error.message;
  }
  return undefined;
}
