/**
 * What `npm start` runs (after its prestart build), read from package.json so that
 * tests and the bench start the collector exactly as users do.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The start script as [executable, args]: `node` becomes this Node. */
export function npmStartCommand(): [string, string[]] {
  const script = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const [command, ...args] = script.trim().split(/\s+/);
  if (command !== 'node') throw new Error(`npm start is expected to run node, not: ${script}`);
  return [process.execPath, args];
}
