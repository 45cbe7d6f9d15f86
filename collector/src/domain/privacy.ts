/**
 * IP addresses are never stored: only an HMAC of them, keyed with a server secret
 * (IP_HASH_SECRET, or one generated once and kept in the database so every
 * instance hashes alike).
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

const SECRET_NAME = 'ip_hash';

async function loadSecret(db: Knex): Promise<string> {
  await db.raw(`insert into server_secrets (name, value) values (?, ?) on conflict (name) do nothing`, [
    SECRET_NAME,
    randomBytes(32).toString('base64url'),
  ]);
  const row = (await db('server_secrets').where({ name: SECRET_NAME }).first('value')) as { value: string };
  return row.value;
}

/** A recent address's hash is answered at once (no promise, no microtask): clicks come in floods. */
export type IpHasher = (ip: string) => string | Promise<string>;

/** Recent addresses' hashes: an address sends many requests, an HMAC is the costliest step of a click. */
const HASH_CACHE_SIZE = 10_000;

export function createIpHasher(db: Knex, configuredSecret?: string): IpHasher {
  let secret: Promise<string> | undefined = configuredSecret ? Promise.resolve(configuredSecret) : undefined;
  const recent = new Map<string, string>();
  const hashFresh = async (ip: string) => {
    secret ??= loadSecret(db).catch((error) => {
      secret = undefined; // try again on the next request
      throw error;
    });
    const hash = createHmac('sha256', await secret)
      .update(ip)
      .digest('base64url')
      .slice(0, 32);
    // Oldest first out (a Map iterates in insertion order).
    if (recent.size >= HASH_CACHE_SIZE) recent.delete(recent.keys().next().value as string);
    recent.set(ip, hash);
    return hash;
  };
  return (ip) => recent.get(ip) ?? hashFresh(ip);
}
