/**
 * The steps a test takes through the real app, each in one place: checking a reply,
 * what a browser sends (clicks and events with the publishable key), what the host's
 * server sends (conversions, refunds, reward transitions with the secret key), and
 * reading back participants, referrals, decisions, rewards and reports.
 */
import { expect } from 'vitest';
import type {
  ClickResponse,
  ConversionResultResponse,
  DecisionResponse,
  DeliveryResponse,
  EventResponse,
  Page,
  ParticipantDetailsResponse,
  ReferralResponse,
  RefundResponse,
  ReportSummaryResponse,
  RewardBalances,
  RewardResponse,
} from '../../shared/responses.ts';
import type { ClickCreate, ConversionCreate, ErrorBody, EventCreate } from '../../shared/schemas.ts';
import type { Reply, RequestOptions, TestApp } from './app.ts';
import { newVid, uniq, type ProgramFixture } from './factories.ts';

// ---- replies ---------------------------------------------------------------------------

/** Expects `status` (200 unless told) and returns the body. */
export function expectOk<T>(reply: Reply<T>, status = 200): T {
  expect(reply.status, `${status} expected, got ${reply.status}: ${reply.text}`).toBe(status);
  return reply.body;
}

/** Expects the error shape with this status and code; returns the error. */
export function expectError(reply: Reply, status: number, code: string): ErrorBody['error'] {
  expect(reply.status, reply.text).toBe(status);
  expect(reply.body?.error?.code, reply.text).toBe(code);
  expect(typeof reply.body.error.message).toBe('string');
  return reply.body.error;
}

/** Expects a 422 validation error and returns its fields. */
export function expectValidation(reply: Reply): Record<string, string> {
  expect(reply.status, reply.text).toBe(422);
  expect(reply.body.error).toMatchObject({ code: 'validation_failed', message: 'The request is not valid; see fields' });
  expect(Object.keys(reply.body.error).sort()).toEqual(['code', 'fields', 'message']);
  const fields = reply.body.error.fields as Record<string, string>;
  for (const message of Object.values(fields)) expect(typeof message).toBe('string');
  return fields;
}

/** Expects a 429 in the error shape, as JSON, saying when to retry (within the minute). */
export function expectLimited(reply: Reply) {
  expect(reply.status, reply.text).toBe(429);
  expect(reply.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
  expect(reply.headers.get('content-type')).toMatch(/application\/json/);
  const retryAfter = reply.headers.get('retry-after');
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(60);
}

// ---- the browser (publishable key) -----------------------------------------------------

/** POST /v1/clicks with the program's publishable key; the reply, unchecked (so the body may be anything). */
export function sendClick(
  api: TestApp,
  program: ProgramFixture,
  body: Record<string, unknown>,
  options: RequestOptions = {},
): Promise<Reply> {
  return api.post('/v1/clicks', { key: program.publishable, ...body }, options);
}

/** A click that must be answered 202 `{ valid }` (valid unless told). */
export async function click(api: TestApp, program: ProgramFixture, body: Omit<ClickCreate, 'key'>, { valid = true } = {}) {
  const answer: ClickResponse = expectOk(await sendClick(api, program, body), 202);
  expect(answer).toEqual({ valid });
}

export interface BrowserEventInput {
  type?: EventCreate['type'];
  userId: string;
  email?: string;
  /** A fresh one unless given. */
  eventId?: string;
  /** A fresh visitor unless given. */
  vid?: string;
  code?: string;
  order?: EventCreate['order'];
}

/** A browser (unverified) event through POST /v1/events, answered 202 `{ accepted: true }`; returns what was sent. */
export async function browserEvent(api: TestApp, program: ProgramFixture, event: BrowserEventInput, options: { textPlain?: boolean } = {}) {
  const body = {
    key: program.publishable,
    type: event.type ?? 'signup',
    eventId: event.eventId ?? uniq('evt-'),
    vid: event.vid ?? newVid(),
    ...(event.code ? { code: event.code } : {}),
    user: { id: event.userId, ...(event.email ? { email: event.email } : {}) },
    ...(event.order ? { order: event.order } : {}),
  };
  const reply = options.textPlain
    ? await api.post<EventResponse>('/v1/events', undefined, {
        raw: JSON.stringify(body),
        headers: { 'content-type': 'text/plain;charset=UTF-8' },
      })
    : await api.post<EventResponse>('/v1/events', body);
  expect(expectOk(reply, 202)).toEqual({ accepted: true });
  return body;
}

// ---- the host's server (secret key) ----------------------------------------------------

export interface ConversionInput extends Partial<ConversionCreate> {
  externalId: string;
  /** With `vid`, a shorthand for `referral: { code, vid }`. */
  code?: string;
  vid?: string;
  /** Sent as the Idempotency-Key header. */
  idempotencyKey?: string;
}

/** POST /v1/conversions, a signup with a fresh eventId unless told; the reply, unchecked. */
export function sendConversion(api: TestApp, program: ProgramFixture, input: ConversionInput): Promise<Reply> {
  const { code, vid, idempotencyKey, type = 'signup', eventId = uniq('evt-'), ...rest } = input;
  const body = { type, eventId, ...rest, ...(code || vid ? { referral: { code, vid } } : {}) };
  const headers: Record<string, string> = idempotencyKey ? { 'idempotency-key': idempotencyKey } : {};
  return api.post('/v1/conversions', body, { auth: program.secret, headers });
}

/** A server conversion that must answer 200; returns the answer. */
export async function conversion(api: TestApp, program: ProgramFixture, input: ConversionInput): Promise<ConversionResultResponse> {
  return expectOk(await sendConversion(api, program, input));
}

/** A server signup; `code` attributes it to that code's owner. */
export function serverSignup(api: TestApp, program: ProgramFixture, externalId: string, code?: string, eventId = `signup-${externalId}`) {
  return conversion(api, program, { type: 'signup', eventId, externalId, ...(code ? { referral: { code } } : {}) });
}

/** A server purchase. */
export function serverPurchase(
  api: TestApp,
  program: ProgramFixture,
  externalId: string,
  eventId: string,
  amount: number,
  currency = 'USD',
  code?: string,
) {
  return conversion(api, program, { type: 'purchase', eventId, externalId, amount, currency, ...(code ? { referral: { code } } : {}) });
}

/** POST /v1/refunds; the reply, unchecked. */
export function sendRefund(
  api: TestApp,
  program: ProgramFixture,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return api.post('/v1/refunds', body, { auth: program.secret, headers });
}

/** A refund that must answer 200; returns the answer. */
export async function refund(api: TestApp, program: ProgramFixture, body: Record<string, unknown>): Promise<RefundResponse> {
  return expectOk(await sendRefund(api, program, body));
}

/** POST /v1/rewards/:id/approve|revoke|pay, with a reason when given; the reply, unchecked. */
export function transition(api: TestApp, program: ProgramFixture, id: string, action: string, reason?: string) {
  return api.post(`/v1/rewards/${id}/${action}`, reason === undefined ? undefined : { reason }, { auth: program.secret });
}

// ---- reading back ----------------------------------------------------------------------

/** GET /v1/participants/:externalId, answered 200. */
export async function participant(api: TestApp, program: ProgramFixture, externalId: string) {
  return expectOk(
    await api.get<ParticipantDetailsResponse>(`/v1/participants/${encodeURIComponent(externalId)}`, { auth: program.secret }),
  );
}

export async function balancesOf(api: TestApp, program: ProgramFixture, externalId: string): Promise<RewardBalances> {
  return (await participant(api, program, externalId)).rewards;
}

/** One page of GET /v1/referrals (`query` as in a URL, e.g. `limit=500`). */
export async function referrals(api: TestApp, program: ProgramFixture, query = '') {
  return expectOk(await api.get<Page<ReferralResponse>>(`/v1/referrals${query ? `?${query}` : ''}`, { auth: program.secret }));
}

/** Up to 500 decisions, newest first (`query` as in a URL, e.g. `reason=unknown_code`). */
export async function decisions(api: TestApp, program: ProgramFixture, query = ''): Promise<DecisionResponse[]> {
  const path = `/v1/decisions?limit=500${query ? `&${query}` : ''}`;
  return expectOk(await api.get<Page<DecisionResponse>>(path, { auth: program.secret })).data;
}

/** Every reward of the program matching the query, following nextCursor to the end. */
export async function listAllRewards(
  api: TestApp,
  program: ProgramFixture,
  query: Record<string, string> = {},
  limit = 500,
): Promise<RewardResponse[]> {
  const all: RewardResponse[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const params: URLSearchParams = new URLSearchParams({ ...query, limit: String(limit), ...(cursor ? { cursor } : {}) });
    const body: Page<RewardResponse> = expectOk(await api.get(`/v1/rewards?${params}`, { auth: program.secret }));
    expect(body.data.length).toBeLessThanOrEqual(limit);
    all.push(...body.data);
    cursor = body.nextCursor;
    if (!cursor) return all;
    expect(body.data.length).toBe(limit);
  }
  throw new Error('listAllRewards: too many pages');
}

/** The balances a ledger adds up to: sums per status and currency (revoked and currency-less entries left out). */
export function sumLedger(rewards: RewardResponse[]): RewardBalances {
  const sums: RewardBalances = { pending: {}, approved: {}, paid: {} };
  for (const reward of rewards) {
    if (reward.status === 'revoked' || !reward.currency) continue;
    const bucket = sums[reward.status];
    bucket[reward.currency] = (bucket[reward.currency] ?? 0) + reward.amount;
  }
  return sums;
}

/** Up to 500 outgoing webhook deliveries, newest first (`query` as in a URL, e.g. `status=failed`). */
export async function deliveries(api: TestApp, program: ProgramFixture, query = ''): Promise<DeliveryResponse[]> {
  const path = `/v1/webhooks/deliveries?limit=500${query ? `&${query}` : ''}`;
  return expectOk(await api.get<Page<DeliveryResponse>>(path, { auth: program.secret })).data;
}

/** GET /v1/reports/summary (`query` as in a URL, with its `?`), answered 200. */
export async function summary(api: TestApp, program: ProgramFixture, query = '') {
  return expectOk(await api.get<ReportSummaryResponse>(`/v1/reports/summary${query}`, { auth: program.secret }));
}
