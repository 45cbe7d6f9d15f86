/**
 * The browser snippet served as /r.js, built in memory from snippet/src with the
 * same esbuild options as `npm run build` (so the sources run as they are, too).
 * Built once per process, on first use, and cached with its ETag and gzip bytes.
 * The portal embed (/portal.js) is built and cached the same way.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { portalEmbedBuildOptions, snippetBuildOptions } from '../../snippet/esbuild.mjs';

export interface SnippetBundle {
  /** The minified IIFE. */
  code: string;
  /** Strong ETag of `code` (SHA-256), quoted. */
  etag: string;
  /** `code` compressed with gzip -9. */
  gzip: Buffer;
  /** Strong ETag of the gzip representation: a different byte sequence needs its own. */
  gzipEtag: string;
}

/** Builds the IIFE now (no cache). */
export function buildSnippetBundle(): Promise<SnippetBundle> {
  return bundle(snippetBuildOptions('iife'));
}

async function bundle(options: ReturnType<typeof snippetBuildOptions>): Promise<SnippetBundle> {
  const result = await build(options);
  const output = result.outputFiles[0];
  if (!output) throw new Error(`esbuild produced no output for ${String(options.entryPoints)}`);
  const code = output.text;
  const hash = createHash('sha256').update(code).digest('base64url');
  return { code, etag: `"${hash}"`, gzip: gzipSync(code, { level: 9 }), gzipEtag: `"${hash}-gzip"` };
}

/** Builds once, on first use; a failed build is not cached, so the next request tries again. */
function cachedBuild(make: () => Promise<SnippetBundle>): () => Promise<SnippetBundle> {
  let cached: Promise<SnippetBundle> | undefined;
  return () =>
    (cached ??= make().catch((error: unknown) => {
      cached = undefined;
      throw error;
    }));
}

/** /r.js. */
export const loadSnippetBundle = cachedBuild(buildSnippetBundle);

/** /portal.js: `referral('portal', …)`, kept out of /r.js. */
export const loadPortalEmbedBundle = cachedBuild(() => bundle(portalEmbedBuildOptions()));
