/**
 * API keys: `pk_` (publishable, browser) and `sk_` (secret, server/admin), each
 * 24 random bytes from the CSPRNG. Only a SHA-256 hash is stored; the key is shown once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { ApiKeyResponse } from '../../../shared/responses.ts';
import { conflict, notFound, unauthorized } from '../errors.ts';
import { prepared } from '../storage/db.ts';

export type KeyKind = 'publishable' | 'secret';

const PREFIX: Record<KeyKind, string> = { publishable: 'pk_', secret: 'sk_' };
const KEY_BYTES = 24;

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function kindOfKey(key: string): KeyKind | undefined {
  if (key.startsWith('pk_')) return 'publishable';
  if (key.startsWith('sk_')) return 'secret';
  return undefined;
}

/** Compares two strings in time that depends only on their length-independent digests. */
export function safeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

export interface ApiKeyRow {
  id: string;
  program_id: string;
  kind: KeyKind;
  hash: string;
  prefix: string;
  created_at: Date;
  revoked_at: Date | null;
}

/** A key as the API lists it: its prefix, never the key or its hash. */
export function presentApiKey(row: ApiKeyRow): ApiKeyResponse {
  return {
    id: row.id,
    kind: row.kind,
    prefix: row.prefix,
    createdAt: row.created_at.toISOString(),
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}

/** Creates a key for a program and returns it in clear: the only time it is seen. */
export async function createApiKey(trx: Knex, programId: string, kind: KeyKind): Promise<{ row: ApiKeyRow; key: string }> {
  const key = PREFIX[kind] + randomBytes(KEY_BYTES).toString('base64url');
  const [row] = await trx('api_keys')
    .insert({ program_id: programId, kind, hash: hashKey(key), prefix: key.slice(0, 10) })
    .returning('*');
  return { row: row as ApiKeyRow, key };
}

/**
 * A new key for the program with this slug, for the operator (ADMIN_TOKEN, or the CLI
 * on the database): the way back in when a program's secret key is lost.
 */
export async function createApiKeyForSlug(db: Knex, slug: string, kind: KeyKind): Promise<{ row: ApiKeyRow; key: string }> {
  const program = (await db('programs').where({ slug }).first('id')) as { id: string } | undefined;
  if (!program) throw notFound(`Program "${slug}"`);
  return createApiKey(db, program.id, kind);
}

/** The program's keys, live and revoked, oldest first. */
export async function listApiKeys(db: Knex, programId: string): Promise<ApiKeyRow[]> {
  return (await db('api_keys').where({ program_id: programId }).orderBy('created_at')) as ApiKeyRow[];
}

/**
 * Revokes one of the program's keys. The last live secret key cannot be revoked:
 * the program would be locked out. The live keys are locked first, so two requests
 * revoking the last two secret keys cannot both succeed.
 */
export async function revokeApiKey(db: Knex, programId: string, keyId: string): Promise<ApiKeyRow> {
  return db.transaction(async (trx) => {
    const live = (await trx('api_keys').where({ program_id: programId }).whereNull('revoked_at').forUpdate()) as ApiKeyRow[];
    const target = live.find((row) => row.id === keyId);
    if (!target) {
      const revoked = await trx('api_keys').where({ program_id: programId, id: keyId }).first('id');
      if (revoked) throw conflict('key_revoked', 'This key is already revoked');
      throw notFound('Key');
    }
    if (target.kind === 'secret' && live.filter((row) => row.kind === 'secret').length === 1) {
      throw conflict('last_secret_key', 'Create another secret key before revoking the last one');
    }
    const [row] = await trx('api_keys').where({ id: target.id }).update({ revoked_at: trx.fn.now() }).returning('*');
    return row as ApiKeyRow;
  });
}

const KEY_WITH_PROGRAM = `select p.*, k.id as key_id, k.hash as key_hash from api_keys k join programs p on p.id = k.program_id
  where k.hash = ? and k.kind = ? and k.revoked_at is null limit 1`;

/** The answer to a secret key that is not (or no longer) live. */
export const revokedSecretKey = () => unauthorized('Unknown or revoked secret key');

/** The live key and its program in one query (the hot path of every authenticated request). */
export async function findKeyWithProgram<P>(db: Knex, key: string, kind: KeyKind): Promise<{ keyId: string; program: P } | undefined> {
  if (kindOfKey(key) !== kind || key.length > 200) return undefined;
  const hash = hashKey(key);
  const result = await prepared(db, 'key_with_program', KEY_WITH_PROGRAM, [hash, kind]);
  const row = result.rows[0] as (Record<string, unknown> & { key_id: string; key_hash: string }) | undefined;
  if (!row || !timingSafeEqual(Buffer.from(row.key_hash, 'hex'), Buffer.from(hash, 'hex'))) return undefined;
  const { key_id: keyId, key_hash: _hash, ...program } = row;
  return { keyId, program: program as P };
}
