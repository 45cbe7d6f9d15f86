/**
 * The API shapes the dashboard reads (see DESIGN.md, "HTTP API (v1)"). Only the
 * fields shown are listed; the API may add more.
 */
import type { MoneyByCurrency, RewardStatus } from '../../shared/types.ts';

export type { MoneyByCurrency, RewardStatus };

export interface RewardBalances {
  pending: MoneyByCurrency;
  approved: MoneyByCurrency;
  paid: MoneyByCurrency;
}

/** The figures reported for a program and for each referrer alike. */
export interface Figures {
  clicks: number;
  visitors: number;
  signups: number;
  purchases: number;
  revenue: MoneyByCurrency;
  conversionRate: number;
  rewards: RewardBalances;
}

export interface Summary extends Figures {
  from: string;
  to: string;
}

export interface ReferrerRow extends Figures {
  /** The referrer's externalId (null only if the participant is gone). */
  participant: string | null;
  email: string | null;
  name: string | null;
  code: string | null;
}

export type LeaderboardSort = 'clicks' | 'signups' | 'purchases' | 'conversionRate';

export interface OffsetPage<T> {
  data: T[];
  nextOffset: number | null;
}

export interface CursorPage<T> {
  data: T[];
  nextCursor: string | null;
}

export interface TimeseriesPoint {
  date: string;
  clicks: number;
  signups: number;
  purchases: number;
  revenue: MoneyByCurrency;
}

export interface Timeseries {
  interval: 'day' | 'week';
  from: string;
  to: string;
  points: TimeseriesPoint[];
}

export interface Referral {
  id: string;
  referrer: string;
  referred: string;
  referredEmail: string | null;
  code: string | null;
  status: string;
  reason: string | null;
  verified: boolean;
  createdAt: string;
}

export interface Decision {
  id: string;
  subject: string;
  outcome: 'accepted' | 'rejected' | 'held';
  reason: string;
  participant: string | null;
  referrer: string | null;
  code: string | null;
  eventId: string | null;
  details: Record<string, unknown>;
  createdAt: string;
}

export interface Reward {
  id: string;
  participant: string;
  rule: string;
  kind: 'credit' | 'cash' | 'coupon';
  amount: number;
  currency: string | null;
  coupon?: string;
  status: RewardStatus;
  availableAt: string;
  eventId: string;
  reverses?: string;
  needsReview: boolean;
  createdAt: string;
}

export type RewardAction = 'approve' | 'revoke' | 'pay';

export interface Program {
  id: string;
  slug: string;
  name: string;
  settings: Record<string, unknown>;
  webhookSecret?: string;
  createdAt?: string;
  updatedAt?: string;
}
