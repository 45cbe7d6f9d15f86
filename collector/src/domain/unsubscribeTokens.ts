/**
 * Unsubscribe links: a token naming one participant and what they stop getting (one
 * kind of email, or all of them), signed with HMAC-SHA256 under a server secret kept
 * in `server_secrets` (so every instance signs and checks alike). The token never
 * expires: an unsubscribe link must work whenever the email is read (RFC 8058).
 *
 * Layout: base64url(version 1 | participant id 16 B | scope 1 B) "." base64url(HMAC
 * of those 18 bytes) — 68 characters, safe in a query string.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { EmailKind } from '../../../shared/schemas.ts';

const SECRET_NAME = 'email_unsubscribe';
const VERSION = 1;
const PAYLOAD_BYTES = 18;
const SIGNATURE_BYTES = 32;

/** What a token unsubscribes from: one kind of email, or every email. */
export type UnsubscribeScope = EmailKind | 'all';
const SCOPES: readonly UnsubscribeScope[] = ['all', 'referral', 'rewardApproved', 'payoutPaid'];

export interface UnsubscribeClaims {
  participantId: string;
  scope: UnsubscribeScope;
}

export interface UnsubscribeTokens {
  sign(claims: UnsubscribeClaims): Promise<string>;
  /** The claims of a token this server signed; null for anything else (changed, truncated, foreign). */
  verify(token: string): Promise<UnsubscribeClaims | null>;
}

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

/** Signs and checks unsubscribe tokens; the secret is read (or made) on first use. */
export function createUnsubscribeTokens(db: Knex): UnsubscribeTokens {
  let secret: Promise<Buffer> | undefined;
  const key = () =>
    (secret ??= loadSecret(db).catch((error: unknown) => {
      secret = undefined; // try again next time
      throw error;
    }));
  const mac = async (payload: Buffer) =>
    createHmac('sha256', await key())
      .update(payload)
      .digest();

  return {
    async sign({ participantId, scope }) {
      const payload = Buffer.alloc(PAYLOAD_BYTES);
      payload.writeUInt8(VERSION, 0);
      uuidBytes(participantId).copy(payload, 1);
      payload.writeUInt8(SCOPES.indexOf(scope), 17);
      return `${payload.toString('base64url')}.${(await mac(payload)).toString('base64url')}`;
    },

    async verify(token) {
      const [encoded = '', signature = '', extra] = token.split('.');
      const payload = Buffer.from(encoded, 'base64url');
      const given = Buffer.from(signature, 'base64url');
      // Canonical encodings only: a changed character must not decode to the same bytes.
      const canonical = payload.toString('base64url') === encoded && given.toString('base64url') === signature;
      if (!canonical || extra !== undefined || payload.length !== PAYLOAD_BYTES || given.length !== SIGNATURE_BYTES) return null;
      if (payload[0] !== VERSION || !timingSafeEqual(given, await mac(payload))) return null;
      const scope = SCOPES[payload.readUInt8(17)];
      return scope ? { participantId: uuidText(payload.subarray(1, 17)), scope } : null;
    },
  };
}
