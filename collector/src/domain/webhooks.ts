/**
 * Webhooks out: events are written to an outbox in the same transaction as the
 * change they announce, then delivered at least once with exponential backoff.
 * Each delivery carries its id (receivers drop duplicates by it) and an
 * HMAC-SHA256 signature over `timestamp.body` with the program's webhook secret.
 * Only public addresses are connected to (webhookTargets.ts); redirects are not followed.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Knex } from 'knex';
import type { DeliveryResponse, Page } from '../../../shared/responses.ts';
import type { DeliveryQuery } from '../../../shared/schemas.ts';
import { pageQuery, toPage } from '../storage/paging.ts';
import type { ProgramRow } from './programs.ts';
import { guardedLookup, RefusedWebhookTarget, type Resolve, type WebhookTargetPolicy } from './webhookTargets.ts';

export type WebhookType =
  | 'referral.created'
  | 'reward.created'
  | 'reward.approved'
  | 'reward.revoked'
  | 'reward.paid'
  | 'payout.created'
  | 'payout.paid';

export const SIGNATURE_HEADER = 'Referral-Signature';
export const ID_HEADER = 'Referral-Webhook-Id';
export const MAX_ATTEMPTS = 12;
const BASE_DELAY_MS = 5_000;
const MAX_DELAY_MS = 6 * 60 * 60 * 1000;
const TIMEOUT_MS = 10_000;

/** Queues an event for the program's webhookUrl (nothing when none is set). */
export async function enqueueWebhook(trx: Knex, program: ProgramRow, type: WebhookType, data: Record<string, unknown>): Promise<void> {
  const url = program.settings.webhookUrl;
  if (!url) return;
  await trx('webhook_outbox').insert({ program_id: program.id, type, url, payload: JSON.stringify(data) });
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` */
export function signWebhook(secret: string, body: string, timestamp: number): string {
  const digest = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${digest}`;
}

/** The receiver's check (also shown in the README): signature valid and no older than `toleranceSeconds`. */
export function verifyWebhook(secret: string, body: string, header: string, toleranceSeconds = 300, now = Date.now()): boolean {
  const parts = Object.fromEntries(header.split(',').map((part) => part.split('=', 2) as [string, string]));
  const timestamp = Number(parts.t);
  if (!parts.v1 || !Number.isFinite(timestamp) || Math.abs(now / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, body, timestamp).split('v1=')[1] as string, 'hex');
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function backoffMs(attempts: number): number {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

interface OutboxRow {
  id: string;
  program_id: string;
  type: WebhookType;
  url: string;
  payload: Record<string, unknown>;
  attempts: number;
  created_at: Date;
  webhook_secret: string;
}

export interface DeliveryOptions {
  batch?: number;
  /** WEBHOOK_ALLOW_PRIVATE: deliver to this machine and private networks too (local development). */
  allowPrivate?: boolean;
  /** Resolves host names instead of DNS (tests). */
  resolve?: Resolve;
}

/**
 * Sends what is due, at most `batch` deliveries. Rows are claimed with SKIP LOCKED so
 * several collector processes never send the same attempt twice at once.
 */
export async function deliverDueWebhooks(db: Knex, options: DeliveryOptions = {}): Promise<number> {
  const policy: WebhookTargetPolicy = { allowPrivate: options.allowPrivate ?? false, resolve: options.resolve };
  const due = await db.transaction(async (trx) => {
    const rows = (await trx('webhook_outbox as o')
      .join('programs as p', 'p.id', 'o.program_id')
      .where('o.status', 'pending')
      .where('o.next_attempt_at', '<=', trx.fn.now())
      .orderBy('o.next_attempt_at')
      .limit(options.batch ?? 50)
      .forUpdate('o')
      .skipLocked()
      .select('o.*', 'p.webhook_secret')) as OutboxRow[];
    if (rows.length) {
      // Push the claimed rows out of the due window while they are sent.
      await trx('webhook_outbox')
        .whereIn(
          'id',
          rows.map((row) => row.id),
        )
        .update({ next_attempt_at: new Date(Date.now() + TIMEOUT_MS * 3) });
    }
    return rows;
  });
  await Promise.all(due.map((row) => deliverOne(db, row, policy)));
  return due.length;
}

/**
 * POSTs `body` and answers the response status (the response body is never read, and a
 * redirect is just its status). The socket connects only to an address `lookup` checked.
 */
function post(url: URL, headers: Record<string, string>, body: string, lookup: LookupFunction): Promise<number> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup,
        // A fresh connection each time: a pooled socket would skip the lookup's check.
        agent: false,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      },
      (response) => {
        resolve(response.statusCode ?? 0);
        response.destroy();
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function deliverOne(db: Knex, row: OutboxRow, policy: WebhookTargetPolicy): Promise<void> {
  const body = JSON.stringify({ id: row.id, type: row.type, createdAt: row.created_at.toISOString(), data: row.payload });
  const attempts = row.attempts + 1;
  let status: number | null = null;
  let error: string | null = null;
  let refused = false;
  try {
    const url = new URL(row.url);
    const lookup = guardedLookup(url, policy);
    status = await post(
      url,
      {
        'content-type': 'application/json',
        'user-agent': 'referral-collector-webhooks/1',
        [ID_HEADER]: row.id,
        [SIGNATURE_HEADER]: signWebhook(row.webhook_secret, body, Math.floor(Date.now() / 1000)),
      },
      body,
      lookup,
    );
    if (status < 200 || status >= 300) error = `HTTP ${status}`;
  } catch (caught) {
    // A refused target will never be allowed: no point retrying it.
    refused = caught instanceof RefusedWebhookTarget;
    const { message, code } = caught as NodeJS.ErrnoException;
    error = (message || code || 'delivery failed').slice(0, 500);
  }
  const update = error
    ? {
        attempts,
        last_status: status,
        last_error: error,
        status: refused || attempts >= MAX_ATTEMPTS ? 'failed' : 'pending',
        next_attempt_at: new Date(Date.now() + backoffMs(attempts)),
      }
    : { attempts, last_status: status, last_error: null, status: 'delivered', delivered_at: new Date() };
  await db('webhook_outbox').where({ id: row.id }).update(update);
}

export type DeliveryRow = {
  id: string;
  type: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: Date;
  delivered_at: Date | null;
  created_at: Date;
};

export function presentDelivery(row: DeliveryRow): DeliveryResponse {
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    attempts: row.attempts,
    lastStatus: row.last_status,
    lastError: row.last_error,
    nextAttemptAt: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
    deliveredAt: row.delivered_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  };
}

/** GET /v1/webhooks/deliveries: the program's outbox, newest first. */
export async function listDeliveries(db: Knex, programId: string, query: DeliveryQuery): Promise<Page<DeliveryResponse>> {
  const rows = db('webhook_outbox as o').where('o.program_id', programId).select('o.*');
  if (query.status) rows.where('o.status', query.status);
  return toPage((await pageQuery(rows, 'o', query.limit, query.cursor)) as DeliveryRow[], query.limit, presentDelivery);
}
