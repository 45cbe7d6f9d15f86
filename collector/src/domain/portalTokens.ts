/**
 * Portal tokens: what lets a referrer open their own page without an account here.
 * A token names one participant of one program and when it stops working, signed
 * with HMAC-SHA256 under a server secret (generated once and kept in
 * `server_secrets`, so every instance signs and checks alike). Nothing is stored per
 * token: it is valid until it expires, and erasing the participant ends it early.
 *
 * Layout: base64url(version 1 | participant id 16 B | program id 16 B | expiry 4 B,
 * Unix seconds) "." base64url(HMAC-SHA256 of those 37 bytes) — 93 characters, safe
 * in a URL path.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import { AppError } from '../errors.ts';

const SECRET_NAME = 'portal_token';
const VERSION = 1;
const PAYLOAD_BYTES = 37;
const SIGNATURE_BYTES = 32;

export interface PortalClaims {
  participantId: string;
  programId: string;
  /** When the token stops working. */
  expiresAt: Date;
}

export interface PortalTokens {
  /** A signed token for these claims (tests forge expired ones through it). */
  sign(claims: PortalClaims): Promise<string>;
  /** The claims of a token this server signed, expired or not; null for anything else. */
  read(token: string): Promise<{ claims: PortalClaims; expired: boolean } | null>;
  /** The claims of a token this server signed and that has not expired; else a 401. */
  verify(token: string): Promise<PortalClaims>;
}

/** 401 for a token that is not ours or was changed. */
export const invalidPortalToken = () =>
  new AppError(401, 'token_invalid', 'This portal link is not valid; ask for a new one', undefined, { 'WWW-Authenticate': 'Portal' });

/** 401 for a genuine token past its expiry. */
export const expiredPortalToken = () =>
  new AppError(401, 'token_expired', 'This portal link has expired; ask for a new one', undefined, { 'WWW-Authenticate': 'Portal' });

async function loadSecret(db: Knex): Promise<Buffer> {
  await db.raw('insert into server_secrets (name, value) values (?, ?) on conflict (name) do nothing', [
    SECRET_NAME,
    randomBytes(32).toString('base64url'),
  ]);
  const row = (await db('server_secrets').where({ name: SECRET_NAME }).first('value')) as { value: string };
  return Buffer.from(row.value, 'base64url');
}

const uuidBytes = (id: string) => Buffer.from(id.replace(/-/g, ''), 'hex');
const uuidText = (bytes: Buffer) => {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

/** Signs and checks portal tokens; the secret is read (or made) on first use. */
export function createPortalTokens(db: Knex): PortalTokens {
  let secret: Promise<Buffer> | undefined;
  const key = () =>
    (secret ??= loadSecret(db).catch((error: unknown) => {
      secret = undefined; // try again on the next request
      throw error;
    }));
  const mac = async (payload: Buffer) =>
    createHmac('sha256', await key())
      .update(payload)
      .digest();

  return {
    async sign({ participantId, programId, expiresAt }) {
      const payload = Buffer.alloc(PAYLOAD_BYTES);
      payload.writeUInt8(VERSION, 0);
      uuidBytes(participantId).copy(payload, 1);
      uuidBytes(programId).copy(payload, 17);
      payload.writeUInt32BE(Math.floor(expiresAt.getTime() / 1000), 33);
      return `${payload.toString('base64url')}.${(await mac(payload)).toString('base64url')}`;
    },

    read,

    async verify(token) {
      const result = await read(token);
      if (!result) throw invalidPortalToken();
      if (result.expired) throw expiredPortalToken();
      return result.claims;
    },
  };

  async function read(token: string): Promise<{ claims: PortalClaims; expired: boolean } | null> {
    const [encoded = '', signature = '', extra] = token.split('.');
    const payload = Buffer.from(encoded, 'base64url');
    const given = Buffer.from(signature, 'base64url');
    // Canonical encodings only: base64url decoding skips stray characters and spare bits,
    // so a changed character must not decode to the same bytes.
    const canonical = payload.toString('base64url') === encoded && given.toString('base64url') === signature;
    if (
      !canonical ||
      extra !== undefined ||
      payload.length !== PAYLOAD_BYTES ||
      given.length !== SIGNATURE_BYTES ||
      payload[0] !== VERSION
    ) {
      return null;
    }
    // The signature first: nothing of an unsigned token is believed, not even its expiry.
    if (!timingSafeEqual(given, await mac(payload))) return null;
    const expiresAt = new Date(payload.readUInt32BE(33) * 1000);
    const claims = { participantId: uuidText(payload.subarray(1, 17)), programId: uuidText(payload.subarray(17, 33)), expiresAt };
    return { claims, expired: expiresAt.getTime() <= Date.now() };
  }
}
