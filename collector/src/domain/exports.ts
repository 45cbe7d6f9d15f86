/**
 * CSV exports, streamed in keyset-paged batches so memory stays flat however many
 * rows there are (the same on PostgreSQL and PGlite).
 */
import type { Knex } from 'knex';
import { csvRow, type Cell } from './csv.ts';
import type { DayRange } from './reports.ts';

const BATCH = 2000;
const DAY_MS = 86_400_000;

interface ExportSpec {
  header: string[];
  /** The table alias whose created_at and id page the export. */
  alias: string;
  query: (db: Knex, programId: string) => Knex.QueryBuilder;
  row: (record: Record<string, unknown>) => Cell[];
}

const asDate = (value: unknown) => (value instanceof Date ? value : null);

export const EXPORTS: Record<'referrals' | 'rewards' | 'clicks', ExportSpec> = {
  referrals: {
    header: [
      'referrer_external_id',
      'referrer_email',
      'referrer_name',
      'referred_external_id',
      'referred_email',
      'referred_name',
      'code',
      'status',
      'reason',
      'verified',
      'created_at',
    ],
    alias: 'r',
    query: (db, programId) =>
      db('referrals as r')
        .join('participants as a', 'a.id', 'r.referrer_id')
        .join('participants as b', 'b.id', 'r.referred_id')
        .leftJoin('codes as c', 'c.id', 'r.code_id')
        .where('r.program_id', programId)
        .select(
          'a.external_id as referrer',
          'a.email as referrer_email',
          'a.name as referrer_name',
          'b.external_id as referred',
          'b.email as referred_email',
          'b.name as referred_name',
          'c.code',
          'r.status',
          'r.reason',
          'r.verified',
          'r.created_at',
        ),
    row: (r) =>
      [
        r.referrer,
        r.referrer_email,
        r.referrer_name,
        r.referred,
        r.referred_email,
        r.referred_name,
        r.code,
        r.status,
        r.reason,
        r.verified,
        asDate(r.created_at),
      ] as Cell[],
  },
  rewards: {
    header: [
      'id',
      'participant_external_id',
      'participant_email',
      'rule',
      'kind',
      'amount',
      'currency',
      'coupon',
      'status',
      'available_at',
      'event_id',
      'reverses',
      'created_at',
    ],
    alias: 'w',
    query: (db, programId) =>
      db('rewards as w')
        .join('participants as p', 'p.id', 'w.beneficiary_id')
        .join('conversions as v', 'v.id', 'w.conversion_id')
        .where('w.program_id', programId)
        .select(
          'w.id',
          'p.external_id',
          'p.email',
          'w.rule_id',
          'w.kind',
          'w.amount',
          'w.currency',
          'w.coupon',
          'w.status',
          'w.available_at',
          'v.event_id',
          'w.reverses',
          'w.created_at',
        ),
    row: (r) =>
      [
        r.id,
        r.external_id,
        r.email,
        r.rule_id,
        r.kind,
        Number(r.amount),
        r.currency,
        r.coupon,
        r.status,
        asDate(r.available_at),
        r.event_id,
        r.reverses,
        asDate(r.created_at),
      ] as Cell[],
  },
  clicks: {
    header: ['code', 'referrer_external_id', 'visitor_id', 'url', 'referrer_url', 'created_at'],
    alias: 'k',
    query: (db, programId) =>
      db('clicks as k')
        .join('codes as c', 'c.id', 'k.code_id')
        .join('participants as p', 'p.id', 'c.participant_id')
        .where('c.program_id', programId)
        .select('c.code', 'p.external_id', 'k.vid', 'k.url', 'k.referrer', 'k.created_at'),
    row: (r) => [r.code, r.external_id, r.vid, r.url, r.referrer, asDate(r.created_at)] as Cell[],
  },
};

/** Yields the CSV text batch by batch: header first, then rows oldest first. */
export async function* streamExport(
  db: Knex,
  programId: string,
  kind: keyof typeof EXPORTS,
  range: Partial<DayRange>,
): AsyncGenerator<string> {
  const spec = EXPORTS[kind];
  const a = spec.alias;
  yield csvRow(spec.header);
  // The cursor keeps created_at as text: JavaScript dates would drop its microseconds.
  let cursor: { at: string; id: string } | undefined;
  for (;;) {
    const query = spec.query(db, programId).select(db.raw(`${a}.created_at::text as cursor_at`), db.raw(`${a}.id::text as cursor_id`));
    if (range.from) query.where(`${a}.created_at`, '>=', new Date(`${range.from}T00:00:00Z`));
    if (range.to) query.where(`${a}.created_at`, '<', new Date(Date.parse(`${range.to}T00:00:00Z`) + DAY_MS));
    if (cursor) {
      // The plain bound on created_at lets the index start at the cursor; the row
      // comparison then skips the rows of the cursor's own instant already sent.
      query.where(`${a}.created_at`, '>=', db.raw('?::timestamptz', [cursor.at]));
      query.whereRaw(`(${a}.created_at, ${a}.id) > (?::timestamptz, ?)`, [cursor.at, cursor.id]);
    }
    const rows = (await query.orderByRaw(`${a}.created_at, ${a}.id`).limit(BATCH)) as Array<Record<string, unknown>>;
    if (!rows.length) return;
    yield rows.map((row) => csvRow(spec.row(row))).join('');
    const last = rows[rows.length - 1] as { cursor_at: string; cursor_id: string };
    cursor = { at: last.cursor_at, id: last.cursor_id };
    if (rows.length < BATCH) return;
  }
}
