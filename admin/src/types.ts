/**
 * The API shapes the dashboard reads: the collector's own answer types from
 * shared/responses.ts (its presenters declare them), under the names the views
 * use, so a renamed field breaks the dashboard's typecheck too. Types only: nothing
 * here reaches the bundle. UI-only types follow.
 */
import type {
  DecisionResponse,
  EmailPreviewResponse,
  EmailsResponse,
  LeaderboardRowResponse,
  OffsetPage,
  Page,
  PayoutItemResponse,
  PayoutPreviewResponse,
  PayoutResponse,
  PayoutSkippedResponse,
  ProgramResponse,
  ReferralResponse,
  RefusedOriginResponse,
  RewardTotalsResponse,
  RulePreviewOutcome,
  RulePreviewResponse,
  RewardTotalsRow as RewardTotalsRowResponse,
  ReportFigures,
  ReportReferrersResponse,
  ReportSummaryResponse,
  ReportTimeseriesResponse,
  RewardBalances,
  RewardResponse,
  TimeseriesPointResponse,
} from '../../shared/responses.ts';
import type { MoneyByCurrency, RewardStatus } from '../../shared/types.ts';

export type { MoneyByCurrency, OffsetPage, RewardBalances, RewardStatus };

/** The figures reported for a program and for each referrer alike. */
export type Figures = ReportFigures;
export type Summary = ReportSummaryResponse;
export type ReferrerRow = LeaderboardRowResponse;
export type LeaderboardPage = ReportReferrersResponse;
export type CursorPage<T> = Page<T>;
export type TimeseriesPoint = TimeseriesPointResponse;
export type Timeseries = ReportTimeseriesResponse;
export type Referral = ReferralResponse;
export type Decision = DecisionResponse;
export type Reward = RewardResponse;
export type Program = ProgramResponse;
export type RefusedOrigin = RefusedOriginResponse;
export type RewardTotals = RewardTotalsResponse;
export type RewardTotalsRow = RewardTotalsRowResponse;
export type RulePreview = RulePreviewResponse;
export type { RulePreviewOutcome };
export type Emails = EmailsResponse;
export type EmailPreview = EmailPreviewResponse;
export type Payout = PayoutResponse;
export type PayoutItem = PayoutItemResponse;
export type PayoutPreview = PayoutPreviewResponse;
export type PayoutSkipped = PayoutSkippedResponse;

/** The leaderboard columns a person can sort by. */
export type LeaderboardSort = 'clicks' | 'signups' | 'purchases' | 'conversionRate';

/** The reward buttons: POST /v1/rewards/:id/<action>. */
export type RewardAction = 'approve' | 'revoke' | 'pay';
