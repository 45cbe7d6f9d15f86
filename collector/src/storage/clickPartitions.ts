/**
 * Click partitions: one per calendar month (UTC), named `clicks_mYYYYMM`, made ahead
 * of time, and dropped whole once older than the retention (no DELETE, no bloat).
 * A DEFAULT partition holds any row outside them (a clock far off, a backdated row);
 * when a month's partition is made, its rows move out of the default first, so making
 * one never fails.
 */
import type { Knex } from 'knex';

/**
 * How clicks keep an IP hash (the collector's HMAC, text, as conversions and referrals
 * keep it): its MD5, 16 bytes, half the text's size in the row and in the indexes.
 * Compare a click's `ip_hash` with `ipKeySql(<text hash>)`.
 */
export const ipKeySql = (textHash: string) => `decode(md5(${textHash}), 'hex')`;

/**
 * The indexes every partition has. A code belongs to one program, so indexes that
 * start from a code or a visitor id leave program_id out (16 bytes a row each).
 */
/**
 * "Did this visitor click this code within the hour?", "is this visitor known?",
 * attribution by visitor: all equalities on the visitor id, probed by every click in
 * every partition. A hash entry is ~30 bytes a click whatever the id's length (a btree
 * on (vid, code_id, created_at) took ~80), so it stays in memory longer.
 */
export const VISITOR_INDEX = 'create index if not exists clicks_visitor on clicks using hash (vid)';

export const CLICK_INDEXES = [
  VISITOR_INDEX,
  // A redirect click still waiting for its visitor id; erasure finds an address's redirect clicks here.
  'create index if not exists clicks_unclaimed on clicks (code_id, ip_hash, created_at) where vid is null',
  // Time ranges (exports, retention) at almost no cost per row.
  'create index if not exists clicks_created_brin on clicks using brin (created_at)',
];

/**
 * "The same IP and code within the hour" (redirect-link clicks without a visitor id)
 * only ever reads the last hour, so only the partitions that can hold it carry this
 * index: each partition gets it when made, and loses it a day after its month ends
 * (`retireRecentIndexes`). The planner uses a partition's own indexes, and prunes the
 * months outside the hour when the statement runs.
 */
const RECENT_INDEX_KEEP_MS = 86_400_000;
const recentIndex = (partition: string) => `create index if not exists ${partition}_code_ip on ${partition} (code_id, ip_hash, created_at)`;

const MONTHS_AHEAD = 2;

const monthStart = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
const nextMonth = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
/** Whether the clicks' schema (the first on the search path) has index `name`; another schema's of that name does not count. */
async function hasIndex(db: Knex, name: string): Promise<boolean> {
  const result = await db.raw(
    `select 1 from pg_class where relname = ? and relkind = 'i' and relnamespace = current_schema()::regnamespace`,
    [name],
  );
  return result.rows.length > 0;
}

/** The end of a month partition's range, from its name. */
function partitionEnd(name: string): Date | undefined {
  const match = /^clicks_m(\d{4})(\d{2})$/.exec(name);
  return match ? new Date(Date.UTC(Number(match[1]), Number(match[2]), 1)) : undefined;
}
const partitionName = (at: Date) => `clicks_m${at.getUTCFullYear()}${String(at.getUTCMonth() + 1).padStart(2, '0')}`;

/** The month partitions that exist, by name. */
async function monthPartitions(db: Knex): Promise<string[]> {
  const result = await db.raw(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
     where i.inhparent = 'clicks'::regclass and c.relname like 'clicks_m%'`,
  );
  return (result.rows as Array<{ name: string }>).map((row) => row.name);
}

/**
 * Makes the month partitions from `from` (default: this month) to two months ahead.
 * Rows of a new month waiting in the default partition move into it.
 */
export async function ensureClickPartitions(db: Knex, options: { from?: Date; now?: Date } = {}): Promise<string[]> {
  const now = options.now ?? new Date();
  const existing = new Set(await monthPartitions(db));
  const made: string[] = [];
  const last = monthStart(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + MONTHS_AHEAD, 1)));
  for (let month = monthStart(options.from ?? now); month <= last; month = nextMonth(month)) {
    const name = partitionName(month);
    const recent = nextMonth(month).getTime() + RECENT_INDEX_KEEP_MS > now.getTime();
    if (existing.has(name)) {
      // Checked first: CREATE INDEX locks out inserts even when the index exists.
      if (recent && !(await hasIndex(db, `${name}_code_ip`))) await db.raw(recentIndex(name));
      continue;
    }
    const [lower, upper] = [month.toISOString(), nextMonth(month).toISOString()];
    await db.transaction(async (trx) => {
      await trx.raw(`create table ${name} (like clicks including defaults)`);
      await trx.raw(
        `with moved as (delete from clicks_default where created_at >= ? and created_at < ? returning *) insert into ${name} select * from moved`,
        [lower, upper],
      );
      await trx.raw(`alter table clicks attach partition ${name} for values from ('${lower}') to ('${upper}')`);
      if (recent) await trx.raw(recentIndex(name));
    });
    made.push(name);
  }
  return made;
}

/**
 * Drops the month partitions wholly older than `retentionDays` (and the default
 * partition's rows that old), then, when a month went, the user agents no click has
 * any more (one pass over the clicks, once a month). Rollups, referrals and reports never read raw clicks, so
 * they stay as they were.
 */
export async function dropExpiredClicks(db: Knex, retentionDays: number, now = new Date()): Promise<string[]> {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000);
  const dropped: string[] = [];
  for (const name of await monthPartitions(db)) {
    const end = partitionEnd(name);
    if (end && end <= cutoff) {
      await db.raw(`drop table ${name}`);
      dropped.push(name);
    }
  }
  await db.raw('delete from clicks_default where created_at < ?', [cutoff.toISOString()]);
  // A click batch reusing an agent that no click had in the whole retention, at this very
  // moment, would keep a dangling id: its click loses the user agent, nothing else.
  if (dropped.length) await db.raw('delete from user_agents u where not exists (select 1 from clicks k where k.user_agent_id = u.id)');
  return dropped;
}

/**
 * The longest attribution window of any program, in days: CLICK_RETENTION_DAYS must
 * be at least this, or attribution by a visitor's clicks would lose them too early.
 */
export async function longestWindowDays(db: Knex): Promise<number> {
  const [row] = (await db('programs').max({ days: db.raw(`(settings->>'windowDays')::int`) })) as Array<{ days: number | null }>;
  return Number(row?.days ?? 0);
}

/** The default partition (rows outside every month) always keeps the recent-clicks index. */
export const DEFAULT_PARTITION_INDEX = recentIndex('clicks_default');

/** Drops the recent-clicks index of the months that ended more than a day ago; returns the partitions. */
export async function retireRecentIndexes(db: Knex, now = new Date()): Promise<string[]> {
  const retired: string[] = [];
  for (const name of await monthPartitions(db)) {
    const end = partitionEnd(name);
    if (!end || end.getTime() + RECENT_INDEX_KEEP_MS > now.getTime()) continue;
    if (!(await hasIndex(db, `${name}_code_ip`))) continue;
    await db.raw(`drop index if exists ${name}_code_ip`);
    retired.push(name);
  }
  return retired;
}

/** The hourly upkeep: partitions made ahead, past months' recent-clicks index dropped, and (with a retention) old months dropped. */
export async function maintainClicks(db: Knex, retentionDays: number | undefined): Promise<{ made: string[]; dropped: string[] }> {
  const made = await ensureClickPartitions(db);
  await retireRecentIndexes(db);
  const dropped = retentionDays === undefined ? [] : await dropExpiredClicks(db, retentionDays);
  return { made, dropped };
}

/**
 * Makes `clicks` anew with `columns` (for migrations that rebuild it): partitioned,
 * with its default partition and the months from `from` (default: this month).
 */
async function makeClicks(knex: Knex, columns: string, from: Date | null): Promise<void> {
  await knex.raw(`create table clicks (${columns}) partition by range (created_at)`);
  await knex.raw('alter sequence clicks_id_seq owned by clicks.id');
  await knex.raw('create table clicks_default partition of clicks default');
  await ensureClickPartitions(knex, { from: from ?? new Date() });
}

/** The oldest click in `table` (a copy of the clicks being rebuilt). */
async function firstClick(knex: Knex, table: string): Promise<Date | null> {
  const [range] = (await knex(table).min({ first: 'created_at' })) as Array<{ first: Date | null }>;
  return range?.first ?? null;
}

/**
 * Rebuilds `clicks` with `columns` (for migrations that change its row): the rows that
 * `select` reads out of the old table are copied aside, the table made again with its
 * partitions, the `copy` columns put back in time order, and `indexes` made.
 */
export async function rebuildClicks(
  knex: Knex,
  change: { columns: string; select: string; copy: string; indexes?: string[] },
): Promise<void> {
  await knex.raw('alter sequence clicks_id_seq owned by none');
  await knex.raw(`create table clicks_rebuilding as ${change.select}`);
  await knex.raw('drop table clicks cascade');
  await makeClicks(knex, change.columns, await firstClick(knex, 'clicks_rebuilding'));
  await knex.raw(`insert into clicks (${change.copy}) select ${change.copy} from clicks_rebuilding order by created_at, id`);
  await knex.raw('drop table clicks_rebuilding');
  for (const index of change.indexes ?? [...CLICK_INDEXES, DEFAULT_PARTITION_INDEX]) await knex.raw(index);
}
