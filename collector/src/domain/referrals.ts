/**
 * Reading referrals and decisions: every outcome explained.
 */
import type { Knex } from 'knex';
import type { DecisionResponse, Page, ReferralResponse } from '../../../shared/responses.ts';
import { pageQuery, toPage } from '../storage/paging.ts';
import type { DecisionOutcome } from './decisions.ts';

export interface ReferralFilter {
  referrer?: string | undefined;
  status?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

type ReferralListRow = {
  id: string;
  created_at: Date;
  status: string;
  reason: string | null;
  verified: boolean;
  vid: string | null;
  referrer: string;
  referred: string;
  referred_email: string | null;
  code: string | null;
};

export async function listReferrals(db: Knex, programId: string, filter: ReferralFilter): Promise<Page<ReferralResponse>> {
  const query = db('referrals as r')
    .join('participants as a', 'a.id', 'r.referrer_id')
    .join('participants as b', 'b.id', 'r.referred_id')
    .leftJoin('codes as c', 'c.id', 'r.code_id')
    .where('r.program_id', programId)
    .select(
      'r.id',
      'r.created_at',
      'r.status',
      'r.reason',
      'r.verified',
      'r.vid',
      'a.external_id as referrer',
      'b.external_id as referred',
      'b.email as referred_email',
      'c.code',
    );
  if (filter.referrer) query.where('a.external_id', filter.referrer);
  if (filter.status) query.where('r.status', filter.status);
  const rows = (await pageQuery(query, 'r', filter.limit, filter.cursor)) as ReferralListRow[];
  return toPage(rows, filter.limit, (row) => ({
    id: row.id,
    referrer: row.referrer,
    referred: row.referred,
    referredEmail: row.referred_email,
    code: row.code,
    status: row.status,
    reason: row.reason,
    verified: row.verified,
    createdAt: row.created_at.toISOString(),
  }));
}

export interface DecisionFilter {
  reason?: string | undefined;
  subject?: string | undefined;
  outcome?: string | undefined;
  participant?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

type DecisionListRow = {
  id: number;
  created_at: Date;
  subject: string;
  outcome: DecisionOutcome;
  reason: string;
  code: string | null;
  details: Record<string, unknown> | null;
  participant: string | null;
  referrer: string | null;
  event_id: string | null;
};

export async function listDecisions(db: Knex, programId: string, filter: DecisionFilter): Promise<Page<DecisionResponse>> {
  const query = db('decisions as d')
    .leftJoin('participants as p', 'p.id', 'd.participant_id')
    .leftJoin('participants as r', 'r.id', 'd.referrer_id')
    .leftJoin('conversions as c', 'c.id', 'd.conversion_id')
    .where('d.program_id', programId)
    .select(
      'd.id',
      'd.created_at',
      'd.subject',
      'd.outcome',
      'd.reason',
      'd.code',
      'd.details',
      'p.external_id as participant',
      'r.external_id as referrer',
      'c.event_id',
    );
  if (filter.reason) query.where('d.reason', filter.reason);
  if (filter.subject) query.where('d.subject', filter.subject);
  if (filter.outcome) query.where('d.outcome', filter.outcome);
  if (filter.participant) query.where('p.external_id', filter.participant);
  const rows = (await pageQuery(query, 'd', filter.limit, filter.cursor, 'integer')) as DecisionListRow[];
  return toPage(rows, filter.limit, (row) => ({
    id: String(row.id),
    subject: row.subject,
    outcome: row.outcome,
    reason: row.reason,
    participant: row.participant,
    referrer: row.referrer,
    code: row.code,
    eventId: row.event_id,
    details: row.details ?? {},
    createdAt: row.created_at.toISOString(),
  }));
}
