/**
 * Builds the snippet into snippet/dist: referral.js (the IIFE served as /r.js),
 * referral.mjs (the ES module, package export "./snippet") and portal.js (the portal
 * embed served as /portal.js), and prints their sizes:
 * minified, gzip -9 and brotli bytes. Then bundles the collector into
 * collector/dist/server.mjs, what `npm start` runs: plain Node, no TypeScript loader
 * (about half the memory of running the sources through tsx, and faster), and the
 * CLI into collector/dist/cli.mjs.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { portalEmbedBuildOptions, snippetBuildOptions } from '../snippet/esbuild.mjs';

const dist = fileURLToPath(new URL('../snippet/dist/', import.meta.url));
await mkdir(dist, { recursive: true });

const outputs = [
  ['referral.js', snippetBuildOptions('iife')],
  ['referral.mjs', snippetBuildOptions('esm')],
  ['portal.js', portalEmbedBuildOptions()],
];
const rows = [];
for (const [file, options] of outputs) {
  const result = await build(options);
  // The options keep esbuild silent; a warning here means the js-cookie trimming did not apply.
  for (const warning of result.warnings) console.warn(`${file}: ${warning.text}`);
  const code = result.outputFiles[0].contents;
  await writeFile(dist + file, code);
  rows.push({
    file: `snippet/dist/${file}`,
    minified: code.length,
    gzip: gzipSync(code, { level: 9 }).length,
    brotli: brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  });
}
for (const row of rows) {
  console.log(
    `${row.file.padEnd(26)} ${String(row.minified).padStart(6)} B minified  ${String(row.gzip).padStart(5)} B gzip  ${String(row.brotli).padStart(5)} B brotli`,
  );
}

// The collector: our code in one file, dependencies left in node_modules. The snippet's
// build options stay a separate file (they find js-cookie relative to themselves). The
// CLI too: `referral` runs its bundle while it is newer than the sources (tsx starts
// slower), else the sources through tsx.
for (const [entry, done] of [
  ['server', 'collector/dist/server.mjs built (npm start runs it)'],
  ['cli', 'collector/dist/cli.mjs built (the referral command runs it)'],
]) {
  const result = await build({
    entryPoints: [fileURLToPath(new URL(`../collector/src/${entry}.ts`, import.meta.url))],
    outfile: fileURLToPath(new URL(`../collector/dist/${entry}.mjs`, import.meta.url)),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    external: ['../../snippet/esbuild.mjs'],
    sourcemap: 'linked',
    logLevel: 'warning',
    write: false,
  });
  // Written aside and renamed into place: a process starting meanwhile reads the old file or the new one, never half.
  await mkdir(fileURLToPath(new URL('../collector/dist/', import.meta.url)), { recursive: true });
  for (const file of result.outputFiles) {
    await writeFile(`${file.path}.${process.pid}.tmp`, file.contents);
    await rename(`${file.path}.${process.pid}.tmp`, file.path);
  }
  console.log(done);
}
