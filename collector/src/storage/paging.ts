/**
 * Keyset paging over any table with (created_at, id): newest first, an opaque cursor
 * naming the last row seen. A cursor that was not handed out is a 400.
 */
import type { Knex } from 'knex';
import { badRequest } from '../errors.ts';

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

type Key = [string, string | number];

/** The type of a table's id column: a cursor from another table is refused, not sent to the database. */
export type IdKind = 'uuid' | 'integer';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A cursor names a row we handed out: an ISO time PostgreSQL accepts and an id of the table's kind. */
const validAt = (at: string) => /^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/.test(at) && Date.parse(at) >= Date.parse('1970-01-01T00:00:00Z');
const validId = (id: unknown, kind: IdKind) =>
  kind === 'uuid'
    ? typeof id === 'string' && UUID.test(id)
    : (typeof id === 'string' && /^\d{1,15}$/.test(id)) || (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0);

export function decodeCursor(cursor: string | undefined, kind: IdKind = 'uuid'): Key | undefined {
  if (!cursor) return undefined;
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(key) && key.length === 2 && typeof key[0] === 'string' && validAt(key[0]) && validId(key[1], kind)) return key as Key;
  } catch {
    // fall through
  }
  throw badRequest('invalid_cursor', 'The cursor is not valid; use nextCursor from the previous page');
}

/** Applies "created_at, id before the cursor" and the limit (+1 to know whether more exist). */
export function pageQuery(query: Knex.QueryBuilder, table: string, limit: number, cursor?: string, idKind: IdKind = 'uuid') {
  const key = decodeCursor(cursor, idKind);
  if (key) {
    // JavaScript dates hold milliseconds, PostgreSQL microseconds: compare at the cursor's precision.
    query.whereRaw(`(date_trunc('milliseconds', ${table}.created_at), ${table}.id) < (?, ?)`, [new Date(key[0]), key[1]]);
  }
  return query.orderByRaw(`date_trunc('milliseconds', ${table}.created_at) desc, ${table}.id desc`).limit(limit + 1);
}

export function toPage<R extends { created_at: Date; id: string | number }, T>(rows: R[], limit: number, present: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const slice = more ? rows.slice(0, limit) : rows;
  const last = slice[slice.length - 1];
  return {
    data: slice.map(present),
    nextCursor: more && last ? Buffer.from(JSON.stringify([last.created_at.toISOString(), last.id])).toString('base64url') : null,
  };
}
