/**
 * The size budget of /r.js (DESIGN.md, "Snippet API"): gzip -9, js-cookie included,
 * measured here on the bundle the collector serves.
 */
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { buildSnippetBundle } from '../../collector/src/snippet-bundle.ts';
import { snippetBuildOptions } from '../../snippet/esbuild.mjs';

/**
 * DESIGN.md asks for at most 1300 bytes gzip -9, js-cookie included, and, when every
 * listed feature is in and the bundle is still over, for the measured size, never
 * above 1500. Everything is in (snippet/ARCHITECTURE.md, "Size"): this is the measured
 * size of /r.js, rounded up to the byte. A change that grows it has to earn its bytes.
 */
const GZIP_LIMIT_BYTES = 1489;

/** /r.js as the collector builds it, and the same build with what esbuild says went into it. */
async function builtSnippet() {
  const served = await buildSnippetBundle();
  const result = await build({ ...snippetBuildOptions('iife'), metafile: true });
  const code = result.outputFiles[0]?.text ?? '';
  const inputs = Object.values(result.metafile.outputs)[0]?.inputs ?? {};
  return { served, code, inputs };
}

describe('/r.js size', () => {
  it(`is at most ${GZIP_LIMIT_BYTES} bytes once compressed with gzip -9`, async () => {
    const { served } = await builtSnippet();
    const gzipBytes = gzipSync(served.code, { level: 9 }).length;
    expect(gzipBytes, `/r.js is ${gzipBytes} B gzip -9 (${Buffer.byteLength(served.code)} B minified)`).toBeLessThanOrEqual(
      GZIP_LIMIT_BYTES,
    );
    // What the collector sends to a client accepting gzip is that many bytes too.
    expect(served.gzip.length).toBe(gzipBytes);
  });

  it('counts js-cookie: the library is bundled into the bytes measured, not left outside', async () => {
    const { served, code, inputs } = await builtSnippet();
    // The measured build and the one esbuild describes are the same bytes.
    expect(code).toBe(served.code);
    const jsCookie = Object.entries(inputs).filter(([file]) => /node_modules\/js-cookie\//.test(file));
    expect(jsCookie.map(([file]) => file)).toEqual([expect.stringMatching(/js-cookie\/dist\/js\.cookie\.mjs$/)]);
    expect(jsCookie[0]?.[1].bytesInOutput).toBeGreaterThan(0);
  });

  it('includes js-cookie (its cookie-name encoder, value converter, get and set) and no zod', async () => {
    const { code } = await buildSnippetBundle();
    expect(code).toContain('/%(2[346B]|5E|60|7C)/g');
    expect(code).toContain('/%(2[346BF]|3[AC-F]|40|5[BDE]|60|7[BCD])/g');
    expect(code).toContain('document.cookie?document.cookie.split("; ")');
    expect(code).toMatch(/return\{set:\w+,get:\w+\}/);
    expect(code).not.toMatch(/zod|ZodError/);
  });

  it("trims js-cookie's unused members and paths (the plugin found what it expects)", async () => {
    const result = await build({ ...snippetBuildOptions('iife'), logLevel: 'silent' });
    expect(result.warnings.map((warning) => warning.text)).toEqual([]);
    const code = result.outputFiles[0]?.text ?? '';
    expect(code).not.toMatch(/withAttributes|withConverter|Object\.freeze|typeof document|"number"/);
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
