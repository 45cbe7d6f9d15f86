/**
 * Rewards: an append-only ledger granted by the program's rules.
 * (The rules engine lands with the rewards work; until then no rule pays.)
 */
import type { Knex } from 'knex';
import type { RewardStatus } from '../../../shared/types.ts';
import type { ReferralRow } from './attribution.ts';
import type { ConversionRow } from './conversions.ts';
import type { ProgramRow } from './programs.ts';

export interface RewardRow {
  id: string;
  program_id: string;
  conversion_id: string;
  rule_id: string;
  beneficiary_id: string;
  referral_id: string | null;
  kind: 'credit' | 'cash' | 'coupon';
  amount: number;
  currency: string | null;
  coupon: string | null;
  status: RewardStatus;
  available_at: Date;
  reverses: string | null;
  created_at: Date;
  updated_at: Date;
  /** Joined: the beneficiary's externalId. */
  participant: string;
  /** Joined: the conversion's eventId. */
  event_id: string;
}

export type RewardView = ReturnType<typeof presentReward>;

export function presentReward(row: RewardRow) {
  return {
    id: row.id,
    participant: row.participant,
    rule: row.rule_id,
    kind: row.kind,
    amount: row.amount,
    currency: row.currency,
    ...(row.coupon ? { coupon: row.coupon } : {}),
    status: row.status,
    availableAt: row.available_at.toISOString(),
    eventId: row.event_id,
    createdAt: row.created_at.toISOString(),
  };
}

export async function grantRewards(_trx: Knex, _program: ProgramRow, _conversion: ConversionRow, _referral: ReferralRow): Promise<RewardRow[]> {
  return [];
}

export async function confirmRewards(_trx: Knex, _program: ProgramRow, _conversionId: string): Promise<RewardRow[]> {
  return [];
}
