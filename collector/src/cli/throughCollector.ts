/**
 * The CLI while a collector runs on DATA_DIR: the embedded database has one writer,
 * so the command goes through that collector's operator API (with ADMIN_TOKEN, at
 * the address recorded in the lock) or is refused with what to do instead. It never
 * opens the files behind the collector's back.
 */
import { AppError } from '../errors.ts';
import { type DataDirLocked, describeHolder, isSeenFromHere } from '../storage/dataDirLock.ts';
import type { Command, Out, Values } from './commands.ts';

/** Said to the operator as is, exit 1. */
export class CliError extends Error {
  override name = 'CliError';
}

const REQUEST_LIMIT_MS = 30_000;

export async function runThroughCollector(
  command: Command,
  values: Values,
  locked: DataDirLocked,
  adminToken: string | undefined,
  out: Out,
): Promise<void> {
  const { holder, dataDir } = locked;
  if (holder.role === 'cli') {
    throw new CliError(`${dataDir} is in use by ${describeHolder(holder)}. Wait for it to finish, then run this command again.`);
  }
  const running =
    `The collector (pid ${holder.pid}${holder.url ? `, ${holder.url}` : ''}) is running on ${dataDir}, and the embedded database has one writer, ` +
    'so this command does not open its files.';
  if (!command.remote) throw new CliError(`${running} ${command.whileCollectorRuns ?? 'Stop the collector first.'}`);
  if (!isSeenFromHere(holder)) {
    throw new CliError(
      `${running} It runs on another machine or container (${holder.hostname}): run the command there, or stop that collector first.`,
    );
  }
  if (!holder.url) throw new CliError(`${running} It is still starting: run the command again once it listens, or stop it first.`);
  const { path, body } = command.remote.request(values);
  if (!adminToken) {
    throw new CliError(
      `${running} Stop it first and run the command again, or run the command through it: set ADMIN_TOKEN here to the token the collector runs with, ` +
        `and the CLI sends POST ${path} to ${holder.url}.`,
    );
  }
  const url = holder.url;
  let response: Response;
  try {
    response = await fetch(url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_LIMIT_MS),
    });
  } catch (error) {
    const reason = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new CliError(
      `${running} It does not answer at ${url} (${reason}): if it is starting or stopping, try again in a moment; if it is stuck, stop it.`,
    );
  }
  const answer = (await response.json().catch(() => undefined)) as
    | { error?: { code: string; message: string; fields?: Record<string, string> } }
    | undefined;
  if (response.ok) {
    out.error(`Done through the collector running on ${dataDir} (pid ${holder.pid}, ${url}).`);
    command.remote.print(answer, values, out);
    return;
  }
  const error = answer?.error;
  if (response.status === 401) {
    throw new CliError(
      `The collector at ${url} refused ADMIN_TOKEN: set it to the token the collector runs with (its ADMIN_TOKEN), or stop the collector and run the command again.`,
    );
  }
  if (response.status === 403) {
    throw new CliError(
      `The collector at ${url} runs without ADMIN_TOKEN, so its operator API is off. Restart it with ADMIN_TOKEN set (and the same value here), or stop it and run the command again.`,
    );
  }
  // Validation and not-found answers are said like the local ones.
  if (error) throw new AppError(response.status, error.code, error.message, error.fields);
  throw new CliError(`The collector at ${url} answered ${response.status} to POST ${path}.`);
}
