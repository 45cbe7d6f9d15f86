/**
 * Request bodies: JSON, or `text/plain` holding JSON (so the snippet's sendBeacon
 * needs no CORS preflight). Over 64 KiB is refused with 413 before it is buffered.
 */
import type { Context, Next } from 'koa';
import getRawBody from 'raw-body';
import { AppError, badRequest, payloadTooLarge } from '../errors.ts';

export const BODY_LIMIT = 64 * 1024;

declare module 'koa' {
  interface Request {
    body?: unknown;
    /** The body exactly as received (signature checks need the raw bytes). */
    rawBody?: string;
  }
}

const JSON_TYPES = ['application/json', 'text/plain', 'application/csp-report'];
const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Whether a Content-Type header names one of JSON_TYPES, remembered per header value:
 * clients send the same few, and parsing the media type is a visible share of a click.
 * Any header is answered as `ctx.is` answers it; the memory starts over when full.
 */
const jsonTypeSeen = new Map<string, boolean>();
const JSON_TYPE_MEMORY = 100;

function isJsonType(ctx: Context): boolean {
  const header = ctx.get('content-type');
  let known = jsonTypeSeen.get(header);
  if (known === undefined) {
    known = Boolean(ctx.is(JSON_TYPES));
    if (jsonTypeSeen.size >= JSON_TYPE_MEMORY) jsonTypeSeen.clear();
    jsonTypeSeen.set(header, known);
  }
  return known;
}

export async function parseBody(ctx: Context, next: Next) {
  if (/%00/.test(ctx.querystring)) throw badRequest('invalid_query', 'The query string must not contain NUL characters');
  if (!METHODS_WITH_BODY.has(ctx.method)) return next();
  const length = Number(ctx.get('content-length') || 0);
  if (length > BODY_LIMIT) {
    ctx.set('Connection', 'close'); // the unread body would otherwise wedge a kept-alive connection
    throw payloadTooLarge(BODY_LIMIT);
  }
  if (!ctx.request.length && !ctx.get('transfer-encoding')) {
    ctx.request.body = undefined;
    return next();
  }
  // A body is present here, so `ctx.is` depends on the header alone.
  if (!isJsonType(ctx)) {
    throw new AppError(415, 'unsupported_media_type', 'Send the body as application/json (or text/plain holding JSON)');
  }
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: BODY_LIMIT, encoding: 'utf8', length: ctx.request.length });
  } catch (error) {
    const err = error as { type?: string; status?: number };
    ctx.set('Connection', 'close'); // the rest of the body was not read
    if (err.type === 'entity.too.large') throw payloadTooLarge(BODY_LIMIT);
    throw badRequest('invalid_body', 'The request body could not be read');
  }
  // PostgreSQL text cannot hold NUL; refuse it here rather than fail deep in a query.
  if (text.includes('\\u0000') || text.includes('\0')) throw badRequest('invalid_body', 'The body must not contain NUL characters');
  ctx.request.rawBody = text;
  if (text.trim() === '') {
    ctx.request.body = undefined;
  } else {
    try {
      ctx.request.body = JSON.parse(text);
    } catch {
      throw badRequest('invalid_json', 'The request body is not valid JSON');
    }
  }
  return next();
}
