/**
 * The size budget of /r.js (DESIGN.md, "Snippet API"): gzip -9, js-cookie included.
 */
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { buildSnippetBundle } from '../../collector/src/snippet-bundle.ts';
import { snippetBuildOptions } from '../../snippet/esbuild.mjs';

/** DESIGN.md: "/r.js at most 1300 bytes gzip -9, js-cookie included". */
const GZIP_BUDGET_BYTES = 1300;

describe('/r.js size', () => {
  it(`is at most ${GZIP_BUDGET_BYTES} bytes gzip -9`, async () => {
    const { code, gzip } = await buildSnippetBundle();
    expect(gzip.length).toBe(gzipSync(code, { level: 9 }).length);
    expect(gzip.length, `/r.js is ${gzip.length} B gzip -9 (${Buffer.byteLength(code)} B minified)`).toBeLessThanOrEqual(GZIP_BUDGET_BYTES);
  });

  it('includes js-cookie (its cookie-name encoder) and no zod', async () => {
    const { code } = await buildSnippetBundle();
    expect(code).toContain('/%(2[346B]|5E|60|7C)/g');
    expect(code).not.toMatch(/zod|ZodError/);
  });

  it('targets es2017: no syntax newer than that survives', async () => {
    const { code } = await buildSnippetBundle();
    expect(code).not.toMatch(/\?\.|\?\?|catch\{|\*\*/);
  });

  it('builds the ES module with the same behaviour and the documented exports', async () => {
    const result = await build(snippetBuildOptions('esm'));
    const text = result.outputFiles[0]?.text ?? '';
    expect(text).toMatch(/export\{[^}]*\binit\b/);
    for (const name of ['referral', 'get', 'track']) expect(text).toMatch(new RegExp(`\\bas ${name}\\b|\\b${name}\\b[,}]`));
  });
});
