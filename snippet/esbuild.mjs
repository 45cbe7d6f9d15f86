/**
 * esbuild options for the snippet, shared by scripts/build.mjs (files in
 * snippet/dist) and collector/src/snippet-bundle.ts (/r.js built in memory), so
 * both produce the same bytes.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** @param {'iife' | 'esm'} format */
export function snippetBuildOptions(format) {
  return {
    absWorkingDir: here,
    entryPoints: [format === 'iife' ? 'src/index.ts' : 'src/module.ts'],
    bundle: true,
    minify: true,
    format,
    target: 'es2017',
    platform: 'browser',
    legalComments: 'none',
    // js-cookie's own property names, never reached from outside the bundle (the
    // Cookies object is not exported): safe to shorten. Not `get`/`set`, which
    // share names with our public `referral.get`.
    mangleProps: /^(withAttributes|withConverter|converter|attributes|read|write|remove)$/,
    // The sources are modules, so esbuild would prefix the IIFE with "use strict";
    // nothing in the bundle depends on strict mode, and the budget counts bytes.
    tsconfigRaw: { compilerOptions: { alwaysStrict: false } },
    write: false,
    logLevel: 'silent',
  };
}
