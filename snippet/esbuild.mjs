/**
 * esbuild options for the snippet, shared by scripts/build.mjs (files in
 * snippet/dist) and collector/src/snippet-bundle.ts (/r.js built in memory), so
 * both produce the same bytes.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Build-time trimming of js-cookie (3.0.x), for /r.js's size budget. The snippet
 * calls exactly `Cookies.get(name)` and `Cookies.set(name, value, { expires: Date,
 * sameSite, secure, domain })`, in a browser, and the Cookies object never leaves
 * the bundle. This plugin removes only what those calls can never reach:
 *
 * - the members besides `get` and `set`: `remove`, `withAttributes`, `withConverter`
 *   and the frozen `attributes`/`converter` properties (`return Object.create(…)`
 *   becomes `return { set: set, get: get }`): esbuild cannot shake unused members
 *   out of an object literal;
 * - the `typeof document === 'undefined'` early returns of `set` and `get`
 *   (server-side rendering guards: /r.js only ever runs in a page);
 * - `get()` without a name returning every cookie (the snippet always names one);
 * - `set`'s conversion of a number `expires` (days) into a Date (the snippet passes
 *   a Date, so the cookie expires exactly with the record).
 *
 * Everything that reads and writes the cookie stays js-cookie's own code: `get`'s
 * parsing and decoding, `set`'s name and value encoding (the converter), the merge
 * of default attributes (`path=/`), `expires.toUTCString()` and the serialisation
 * of the attributes. Each cut is an exact match on js-cookie's source; if a release
 * changes any of them, nothing is trimmed and the build warns (and the size test
 * says so).
 */
const JS_COOKIE_CUTS = [
  [
    /return Object\.create\(\s*\{\s*set: set,\s*get: get,\s*remove: [\s\S]*?converter: \{ value: Object\.freeze\(converter\) \}\s*\}\s*\)/,
    'return { set: set, get: get }',
  ],
  [/\n {4}if \(typeof document === 'undefined'\) \{\n {6}return\n {4}\}\n/, '\n'],
  [/\n {4}if \(typeof attributes\.expires === 'number'\) \{\n[^\n]*\n {4}\}\n/, '\n'],
  [/\n {4}if \(typeof document === 'undefined' \|\| \(arguments\.length && !name\)\) \{\n {6}return\n {4}\}\n/, '\n'],
  [/return name \? jar\[name\] : jar\b/, 'return jar[name]'],
];

const trimJsCookie = {
  name: 'trim-js-cookie',
  /** @param {import('esbuild').PluginBuild} build */
  setup(build) {
    build.onLoad({ filter: /[\\/]js-cookie[\\/]dist[\\/]js\.cookie\.mjs$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      let trimmed = source;
      for (const [cut, replacement] of JS_COOKIE_CUTS) {
        if (!cut.test(trimmed)) {
          return {
            contents: source,
            loader: 'js',
            warnings: [{ text: `js-cookie: unexpected source (no match for ${cut}), left untrimmed` }],
          };
        }
        trimmed = trimmed.replace(cut, replacement);
      }
      return { contents: trimmed, loader: 'js' };
    });
  },
};

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
    // Only /r.js has a size budget; the ES module keeps js-cookie whole (the host's
    // bundler may tree-shake and minify it as it likes).
    plugins: format === 'iife' ? [trimJsCookie] : [],
    // js-cookie's converter methods, never reached from outside the bundle: safe to
    // shorten. Not `get`/`set`, which share names with our public `referral.get`.
    mangleProps: /^(read|write)$/,
    // The sources are modules, so esbuild would prefix the IIFE with "use strict";
    // nothing in the bundle depends on strict mode, and the budget counts bytes.
    tsconfigRaw: { compilerOptions: { alwaysStrict: false } },
    write: false,
    logLevel: 'silent',
  };
}

/**
 * The portal embed, served as /portal.js: a script of its own, loaded only by the
 * pages that show a referrer their portal, so /r.js does not grow by a byte.
 */
export function portalEmbedBuildOptions() {
  return {
    absWorkingDir: here,
    entryPoints: ['src/portal.ts'],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2017',
    platform: 'browser',
    legalComments: 'none',
    tsconfigRaw: { compilerOptions: { alwaysStrict: false } },
    write: false,
    logLevel: 'silent',
  };
}
