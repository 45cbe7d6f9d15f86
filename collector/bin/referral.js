#!/usr/bin/env node
// The `referral` command. It runs the bundle `npm run build` (and `npm start`) makes,
// collector/dist/cli.mjs, while that is newer than every source file it is built from;
// otherwise the TypeScript sources through tsx, so no build step is ever needed (tsx
// only starts slower).
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = new URL('../dist/cli.mjs', import.meta.url);
const sources = ['../src/', '../../shared/'].map((dir) => fileURLToPath(new URL(dir, import.meta.url)));

/** The newest modification time under `dir` (0 when it is not there). */
function newest(dir) {
  let latest = 0;
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) latest = Math.max(latest, statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs);
    }
  } catch {
    // No such directory.
  }
  return latest;
}

function bundleIsFresh() {
  try {
    const built = statSync(bundle).mtimeMs;
    return sources.every((dir) => newest(dir) <= built);
  } catch {
    return false;
  }
}

let main;
if (bundleIsFresh()) {
  ({ main } = await import(bundle.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli.ts'));
}
process.exitCode = await main(process.argv.slice(2));
