/**
 * Static assets built or read once per process and served with a strong ETag
 * (the referrer portal's page, script and stylesheet).
 */
import { createHash } from 'node:crypto';
import type { Context } from 'koa';

export interface Asset {
  body: string;
  etag: string;
}

export function asset(body: string): Asset {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Builds a value once; a failed build is forgotten so the next request retries it. */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= load().catch((error: unknown) => {
      pending = undefined;
      throw error;
    }));
}

/** Answers an asset with its ETag (304 when the client has it). */
export async function sendAsset(ctx: Context, type: string, load: () => Promise<Asset>, cacheControl: string): Promise<void> {
  const { body, etag } = await load();
  ctx.set('Cache-Control', cacheControl);
  ctx.type = type;
  ctx.response.etag = etag;
  ctx.status = 200; // freshness is only judged for a 2xx answer
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  ctx.body = body;
}
