/**
 * What the HTTP API answers: the presenters' return types, written once. The
 * collector's presenters declare them, the dashboard and the tests read them, so a
 * renamed field breaks `tsc` everywhere at once. Types only (nothing here exists at
 * runtime), so the dashboard bundle carries no zod.
 *
 * Fields may be added, never renamed (DESIGN.md, "HTTP API (v1)").
 */
import type { EmailKind, PayoutDetails, PayoutMethod, ProgramSettings } from './schemas.ts';
import type { AttributionStatus, ConversionType, MoneyByCurrency, RewardStatus } from './types.ts';

/** A list read newest first; pass `nextCursor` back as `cursor` for the next page (null: no more). */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** A list read by position (the leaderboard); pass `nextOffset` back as `offset` (null: no more). */
export interface OffsetPage<T> {
  data: T[];
  nextOffset: number | null;
}

/** Reward sums by status, per currency (minor units). */
export interface RewardBalances {
  pending: MoneyByCurrency;
  approved: MoneyByCurrency;
  paid: MoneyByCurrency;
}

/**
 * Reward sums apart by kind: cash and store credit per status and currency (minor
 * units), coupons as counts of coupons granted. Cash and credit never add up together.
 */
export interface RewardsByKind {
  cash: RewardBalances;
  credit: RewardBalances;
  coupon: { pending: number; approved: number; paid: number };
}

/** `GET /v1/program`, and inside other answers: a program, its secrets masked. */
export interface ProgramResponse {
  id: string;
  slug: string;
  name: string;
  /** The stored settings, defaults applied; `stripe.webhookSecret` shows its first characters only. */
  settings: ProgramSettings;
  /** Signs the outgoing webhooks. */
  webhookSecret: string;
  createdAt: string;
  updatedAt: string;
}

/** `POST /v1/programs`: the program and its two keys, in clear this once. */
export interface ProgramCreateResponse {
  program: ProgramResponse;
  keys: { publishable: string; secret: string };
}

/** `POST /v1/participants`: the participant with their referral code and link. */
export interface ParticipantResponse {
  id: string;
  externalId: string;
  email: string | null;
  name: string | null;
  code: string;
  /** `PUBLIC_URL/r/CODE`. */
  link: string;
}

/** Lifetime figures of the people a participant referred (from the rollups). */
export interface ParticipantStatsResponse {
  clicks: number;
  signups: number;
  purchases: number;
  /** Revenue less refunds, per currency. */
  revenue: MoneyByCurrency;
}

/** `GET /v1/participants/:externalId`. */
export interface ParticipantDetailsResponse {
  id: string;
  externalId: string;
  email: string | null;
  name: string | null;
  /** Null when every code of theirs is disabled. */
  code: string | null;
  link: string | null;
  /** The referrer's externalId. */
  referredBy: string | null;
  stats: ParticipantStatsResponse;
  rewards: RewardBalances;
  /** How and where they are paid; null until given. */
  payout: PayoutDetails | null;
  /** Provider discounts that attribute paid events to them. */
  promoCodes: PromoCodeResponse[];
}

/** A provider's discount owned by a participant (`/v1/participants/:externalId/promo-codes`). */
export interface PromoCodeResponse {
  id: string;
  /** The owner's externalId. */
  participant: string;
  provider: 'stripe' | 'paddle' | 'lemonsqueezy';
  /** The provider's id of the discount, when known. */
  discountId: string | null;
  /** The text typed at checkout, when known. */
  code: string | null;
  createdAt: string;
}

/** A reward ledger entry (`GET /v1/rewards`, and inside conversion, refund and webhook answers). */
export interface RewardResponse {
  id: string;
  /** The beneficiary's externalId. */
  participant: string;
  /** The id of the rule that granted it. */
  rule: string;
  kind: 'credit' | 'cash' | 'coupon';
  /** Minor units; negative for a clawback. */
  amount: number;
  currency: string | null;
  coupon?: string;
  status: RewardStatus;
  /** When the hold ends: approving earlier needs `force` and a reason. */
  availableAt: string;
  /** The eventId of the conversion that earned it. */
  eventId: string;
  /** For a clawback: the id of the grant it reverses. */
  reverses?: string;
  /** Something behind it is unconfirmed (a browser-only conversion, a held or browser-made referral): look before approving. */
  needsReview: boolean;
  createdAt: string;
}

/** `POST /v1/rewards/:id/approve|revoke|pay`. */
export interface RewardTransitionResponse {
  reward: RewardResponse;
}

/** Where a conversion was reported from. */
export type ConversionSource = 'browser' | 'server' | 'stripe' | 'paddle' | 'lemonsqueezy';

/** A stored conversion. */
export interface ConversionResponse {
  id: string;
  type: ConversionType | 'refund';
  eventId: string;
  /** The customer's externalId. */
  externalId: string;
  amount: number | null;
  currency: string | null;
  /** Reported by the host's server or a verified payment webhook (not only by the browser). */
  verified: boolean;
  source: ConversionSource;
  createdAt: string;
}

/** Who referred the customer, if anyone, and why not otherwise. */
export interface AttributionResponse {
  status: Exclude<AttributionStatus, 'held'>;
  /** The decision reason, e.g. `self_referral` or `already_attributed`. */
  reason?: string;
  /** The referrer's externalId. */
  referrer?: string;
  /** The referral is held for review (velocity, disposable email, …). */
  held?: boolean;
}

/** `POST /v1/conversions` (and a retry of it: the first answer again). */
export interface ConversionResultResponse {
  conversion: ConversionResponse;
  attribution: AttributionResponse;
  /** The rewards this conversion granted. */
  rewards: RewardResponse[];
}

/** `POST /v1/refunds`. */
export interface RefundResponse {
  refund: {
    id: string;
    eventId: string;
    purchaseEventId: string;
    amount: number;
    currency: string | null;
    /** Everything refunded of that purchase so far, this refund included. */
    refundedTotal: number;
    createdAt: string;
  };
  /** The rewards revoked, and the clawbacks added for rewards already paid. */
  rewards: RewardResponse[];
}

/** `GET /v1/referrals` items. */
export interface ReferralResponse {
  id: string;
  /** The referrer's externalId. */
  referrer: string;
  /** The referred customer's externalId. */
  referred: string;
  referredEmail: string | null;
  code: string | null;
  /** `attributed` or `held`. */
  status: string;
  reason: string | null;
  /** Made or confirmed by a server report. */
  verified: boolean;
  createdAt: string;
}

/** `GET /v1/decisions` items: why a click, attribution, conversion or reward went as it did. */
export interface DecisionResponse {
  id: string;
  /** `click`, `attribution`, `conversion` or `reward`. */
  subject: string;
  outcome: 'accepted' | 'rejected' | 'held';
  reason: string;
  /** The customer's externalId. */
  participant: string | null;
  /** The referrer's externalId. */
  referrer: string | null;
  code: string | null;
  eventId: string | null;
  details: Record<string, unknown>;
  createdAt: string;
}

/** The figures reported for a program and for each referrer alike. */
export interface ReportFigures {
  clicks: number;
  /** Distinct visitors who clicked. */
  visitors: number;
  signups: number;
  /** Of `signups`, those whose visitor id had clicked one of the program's codes (a signup by code alone has no click behind it). */
  clickedSignups: number;
  purchases: number;
  revenue: MoneyByCurrency;
  /** Referred signups among visitors who clicked, 0–1: `clickedSignups / visitors`, at most 1. */
  conversionRate: number;
  /** Every kind of reward added together per currency: see `rewardsByKind` for cash and credit apart. */
  rewards: RewardBalances;
  rewardsByKind: RewardsByKind;
}

/** `GET /v1/reports/summary`. */
export interface ReportSummaryResponse extends ReportFigures {
  from: string;
  to: string;
}

/** A row of the leaderboard. */
export interface LeaderboardRowResponse extends ReportFigures {
  /** The referrer's externalId (null only if the participant is gone). */
  participant: string | null;
  email: string | null;
  name: string | null;
  code: string | null;
}

/** `GET /v1/reports/referrers`. */
export interface ReportReferrersResponse extends OffsetPage<LeaderboardRowResponse> {
  from: string;
  to: string;
  /**
   * When the page's order was taken from a ranking kept ahead (programs with many
   * referrers, the last 7, 30 or 90 days, highest first; ranked every minute), else
   * null (ranked for this request). The figures are read for the request either way.
   */
  rankedAt: string | null;
}

/** A bucket (day or week, by its first day) of the time series. */
export interface TimeseriesPointResponse {
  /** YYYY-MM-DD. */
  date: string;
  clicks: number;
  visitors: number;
  signups: number;
  purchases: number;
  revenue: MoneyByCurrency;
}

/** `GET /v1/reports/timeseries`: zero-filled. */
export interface ReportTimeseriesResponse {
  interval: 'day' | 'week';
  from: string;
  to: string;
  points: TimeseriesPointResponse[];
}

/** One rule's outcome for a sample conversion in `POST /v1/program/rules/preview`. */
export interface RulePreviewOutcome {
  applies: boolean;
  /** When it does not apply: a stable code (e.g. `below_min_amount`) and a sentence. */
  reason?: string;
  message?: string;
  /** One per beneficiary: what a grant would be. */
  rewards: Array<{
    to: 'referrer' | 'referee';
    kind: 'credit' | 'cash' | 'coupon';
    /** Minor units. */
    amount: number;
    currency: string | null;
    coupon?: string;
    holdDays: number;
    /** For a conversion the host's server reported; a browser-only one waits for review (pending). */
    status: 'approved' | 'pending';
  }>;
}

/** `POST /v1/program/rules/preview`. */
export interface RulePreviewResponse {
  /** The sample, defaults filled in. */
  sample: { purchaseAmount: number; currency: string; referralNumber: number; firstPurchase: boolean; daysSinceReferral: number };
  rules: Array<{
    rule: string;
    signup: RulePreviewOutcome;
    purchase: RulePreviewOutcome;
    /** The rule's cap per referrer, if any: the preview does not count a referrer's earlier grants. */
    capPerReferrer?: number;
  }>;
}

/** What one participant is owed (or was paid) for a rewards filter: cash and credit apart per currency, coupons counted. */
export interface RewardTotalsRow {
  /** The beneficiary's externalId. */
  participant: string;
  /** Ledger entries, clawbacks included. */
  rewards: number;
  cash: MoneyByCurrency;
  credit: MoneyByCurrency;
  coupons: number;
}

/** `GET /v1/rewards/totals?status=&participant=`: those with the most rewards first. */
export interface RewardTotalsResponse {
  status: RewardStatus | null;
  data: RewardTotalsRow[];
  /** The whole filter, every participant included. */
  total: Omit<RewardTotalsRow, 'participant'> & { participants: number };
  /** More participants than `data` lists (500 at most). */
  truncated: boolean;
}

/** A page whose origin is not in the program's `origins`: its clicks and events were refused. */
export interface RefusedOriginResponse {
  origin: string;
  /** Requests refused (written at most once a minute, so up to a minute's worth may be missing). */
  count: number;
  firstSeen: string;
  lastSeen: string;
}

/** `GET /v1/program/refused-origins`: most recently seen first. */
export interface RefusedOriginListResponse {
  data: RefusedOriginResponse[];
}

/** `GET /v1/webhooks/deliveries` items. */
export interface DeliveryResponse {
  id: string;
  type: string;
  /** `pending`, `delivered` or `failed`. */
  status: string;
  attempts: number;
  /** The receiver's last HTTP status. */
  lastStatus: number | null;
  lastError: string | null;
  /** Null unless pending. */
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

/** An API key as listed: its prefix, never the key. */
export interface ApiKeyResponse {
  id: string;
  kind: 'publishable' | 'secret';
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

/** `GET /v1/keys`. */
export interface ApiKeyListResponse {
  data: ApiKeyResponse[];
}

/** `POST /v1/keys`: the key in clear, this once. */
export interface ApiKeyCreateResponse {
  key: ApiKeyResponse;
  secret: string;
}

/** `DELETE /v1/keys/:id`. */
export interface ApiKeyRevokeResponse {
  key: ApiKeyResponse;
}

/** `POST /v1/clicks`: whether the code counts for this program. */
export interface ClickResponse {
  valid: boolean;
}

/** `POST /v1/events`. */
export interface EventResponse {
  accepted: true;
}

/** One referrer and currency in a payout run. */
export interface PayoutItemResponse {
  id: string;
  /** The referrer's externalId. */
  participant: string;
  currency: string;
  /** Integer minor units: approved cash rewards less unrecovered clawbacks. */
  amount: number;
  method: PayoutMethod;
  destination: { email?: string; stripeAccount?: string };
  /** The rewards this item pays. */
  rewards: string[];
  status: 'pending' | 'paid' | 'failed';
  reference: string | null;
  transferId: string | null;
  failure: string | null;
}

/** A payout run (`POST /v1/payouts`, `GET /v1/payouts/:id`). */
export interface PayoutResponse {
  id: string;
  status: 'created' | 'paid' | 'failed';
  currency: string | null;
  /** Per currency, items not failed. */
  totals: MoneyByCurrency;
  items: PayoutItemResponse[];
  createdAt: string;
  updatedAt: string;
}

/** A referrer and currency a run left out, and why. */
export interface PayoutSkippedResponse {
  participant: string;
  currency: string;
  amount: number;
  reason: 'below_minimum' | 'nothing_to_pay' | 'no_payout_details' | 'erased';
}

/** `POST /v1/payouts { dryRun: true }`: what a run would hold, written nowhere. */
export interface PayoutPreviewResponse {
  dryRun: true;
  items: Array<Omit<PayoutItemResponse, 'id' | 'status' | 'reference' | 'transferId' | 'failure'>>;
  skipped: PayoutSkippedResponse[];
}

/** `POST /v1/participants/:externalId/portal`: a link to the referrer's own page. */
export interface PortalTokenResponse {
  /** `PUBLIC_URL/portal/<token>`: open it, or put it in an iframe on one of the program's origins. */
  url: string;
  /** For `Authorization: Portal <token>` on `/v1/portal/me`, or `referral('portal', { token })`. */
  token: string;
  expiresAt: string;
}

/** Links that open a share dialog with the referral link filled in. */
export interface PortalShareLinks {
  email: string;
  x: string;
  linkedin: string;
  whatsapp: string;
}

/** A day of the referrer's figures (UTC). */
export interface PortalDayResponse {
  /** YYYY-MM-DD. */
  date: string;
  clicks: number;
  signups: number;
  purchases: number;
}

/** A coupon reward of the referrer's. */
export interface PortalCouponResponse {
  /** The coupon code, once the reward is approved (null while pending). */
  coupon: string | null;
  status: 'pending' | 'approved' | 'paid';
  createdAt: string;
}

/** Someone the referrer brought in; only a masked email says who. */
export interface PortalReferralResponse {
  /** e.g. `j***@gmail.com`; null when unknown or erased. */
  email: string | null;
  /** `attributed`, or `held` while it is being reviewed. */
  status: string;
  createdAt: string;
}

/** A payout to the referrer (one item of a payout run). */
export interface PortalPayoutResponse {
  currency: string;
  /** Minor units. */
  amount: number;
  method: PayoutMethod;
  /** `pending` until the program marks it paid (or failed, when its rewards wait for the next run). */
  status: 'pending' | 'paid' | 'failed';
  createdAt: string;
  /** When it was last changed: for a paid one, when it was marked paid. */
  updatedAt: string;
}

/** `GET /v1/portal/me` and `PATCH /v1/portal/me`: everything the referrer's page shows. */
export interface PortalResponse {
  program: { name: string };
  referrer: { name: string | null; email: string | null };
  /** Null when every code of theirs is disabled. */
  code: string | null;
  link: string | null;
  /** The link as a QR code, SVG markup (null with no link). */
  qrSvg: string | null;
  share: PortalShareLinks | null;
  /** Lifetime figures, as `GET /v1/participants/:externalId` has them. */
  stats: ParticipantStatsResponse;
  /** The last 30 days, zero-filled, oldest first. */
  days: PortalDayResponse[];
  /** Rewards by status per currency, cash and credit apart (clawbacks included, revoked left out). */
  rewards: { cash: RewardBalances; credit: RewardBalances; coupons: PortalCouponResponse[] };
  /** Newest first, at most 100; `total` counts them all. */
  referrals: { total: number; data: PortalReferralResponse[] };
  payout: PayoutDetails | null;
  /** Payouts to them, newest first (at most 100). */
  payouts: PortalPayoutResponse[];
  /** Every email is on unless turned off. */
  emails: { referral: boolean; rewardApproved: boolean; payoutPaid: boolean };
  /** When this token stops working. */
  expiresAt: string;
}

/** `GET /v1/emails`: can the server send (SMTP_URL set), who emails come from, which are on. */
export interface EmailsResponse {
  smtpConfigured: boolean;
  from: string | null;
  templates: Array<{ template: EmailKind; on: boolean }>;
}

/** `GET /v1/emails/preview/:template`: the email with sample facts and the program's name. */
export interface EmailPreviewResponse {
  subject: string;
  text: string;
  html: string;
}
