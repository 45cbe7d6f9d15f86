/**
 * API keys: `pk_` (publishable, browser) and `sk_` (secret, server/admin), each
 * 24 random bytes from the CSPRNG. Only a SHA-256 hash is stored; the key is shown once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';

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

/** Creates a key for a program and returns it in clear: the only time it is seen. */
export async function createApiKey(trx: Knex, programId: string, kind: KeyKind): Promise<{ id: string; key: string }> {
  const key = PREFIX[kind] + randomBytes(KEY_BYTES).toString('base64url');
  const [row] = await trx('api_keys')
    .insert({ program_id: programId, kind, hash: hashKey(key), prefix: key.slice(0, 10) })
    .returning('id');
  return { id: (row as { id: string }).id, key };
}

/**
 * Finds the live key of the given kind. The lookup is by hash (an index), and the
 * stored hash is compared again in constant time.
 */
export async function findApiKey(db: Knex, key: string, kind: KeyKind): Promise<ApiKeyRow | undefined> {
  if (kindOfKey(key) !== kind || key.length > 200) return undefined;
  const hash = hashKey(key);
  const row = (await db('api_keys').where({ hash, kind }).whereNull('revoked_at').first()) as ApiKeyRow | undefined;
  if (!row || !timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(hash, 'hex'))) return undefined;
  return row;
}
