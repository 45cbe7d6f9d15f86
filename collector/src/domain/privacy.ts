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

export type IpHasher = (ip: string) => Promise<string>;

export function createIpHasher(db: Knex, configuredSecret?: string): IpHasher {
  let secret: Promise<string> | undefined = configuredSecret ? Promise.resolve(configuredSecret) : undefined;
  return async (ip) => {
    secret ??= loadSecret(db).catch((error) => {
      secret = undefined; // try again on the next request
      throw error;
    });
    return createHmac('sha256', await secret).update(ip).digest('base64url').slice(0, 32);
  };
}
