/**
 * Clicks partitioned by month (declarative range partitions on created_at), so old
 * clicks leave by dropping a whole partition (CLICK_RETENTION_DAYS) instead of DELETE
 * and bloat. Partitions are made ahead by the background worker
 * (storage/clickPartitions.ts); a DEFAULT partition takes any row outside them, so an
 * insert never fails for want of one. The table keeps no primary key: nothing refers
 * to a click by id alone, and an index fewer is paid by every insert.
 */
import type { Knex } from 'knex';
import { ensureClickPartitions } from '../clickPartitions.ts';

/** The indexes as this migration made them (the compact-clicks migration replaces them). */
const CLICK_INDEXES = [
  'create index if not exists clicks_visitor_code on clicks (program_id, vid, code_id, created_at)',
  'create index if not exists clicks_code_ip on clicks (program_id, code_id, ip_hash, created_at)',
  'create index if not exists clicks_unclaimed on clicks (program_id, code_id, ip_hash, created_at) where vid is null',
  'create index if not exists clicks_created_brin on clicks using brin (created_at)',
];

const COLUMNS = `id bigint not null default nextval('clicks_id_seq'),
  program_id uuid not null,
  code_id uuid not null,
  participant_id uuid not null,
  vid text,
  url text,
  referrer text,
  ip_hash text,
  user_agent text,
  created_at timestamptz not null default now()`;

const COPY = 'id, program_id, code_id, participant_id, vid, url, referrer, ip_hash, user_agent, created_at';

export async function up(knex: Knex): Promise<void> {
  // The old table's indexes go first: their names are the new table's.
  for (const name of [
    'clicks_visitor_code',
    'clicks_unclaimed',
    'clicks_program_id_code_id_ip_hash_created_at_index',
    'clicks_program_id_created_at_index',
  ]) {
    await knex.raw(`drop index if exists ${name}`);
  }
  await knex.raw('alter table clicks rename to clicks_unpartitioned');
  await knex.raw(`create table clicks (${COLUMNS}) partition by range (created_at)`);
  await knex.raw('alter sequence clicks_id_seq owned by clicks.id');
  await knex.raw('create table clicks_default partition of clicks default');
  const [range] = (await knex('clicks_unpartitioned').min({ first: 'created_at' })) as Array<{ first: Date | null }>;
  await ensureClickPartitions(knex, { from: range?.first ?? new Date() });
  await knex.raw(`insert into clicks (${COPY}) select ${COPY} from clicks_unpartitioned`);
  await knex.raw('drop table clicks_unpartitioned');
  for (const index of CLICK_INDEXES) await knex.raw(index);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table clicks rename to clicks_partitioned');
  await knex.raw(
    `create table clicks (${COLUMNS.replace("default nextval('clicks_id_seq')", "default nextval('clicks_id_seq') primary key")})`,
  );
  await knex.raw('alter sequence clicks_id_seq owned by clicks.id');
  await knex.raw(`insert into clicks (${COPY}) select ${COPY} from clicks_partitioned`);
  await knex.raw('drop table clicks_partitioned cascade');
  // The indexes as the earlier migrations left them (their own downs drop them by these names).
  await knex.raw('create index clicks_visitor_code on clicks (program_id, vid, code_id, created_at)');
  await knex.raw('create index clicks_program_id_code_id_ip_hash_created_at_index on clicks (program_id, code_id, ip_hash, created_at)');
  await knex.raw('create index clicks_unclaimed on clicks (program_id, code_id, ip_hash, created_at) where vid is null');
  await knex.raw('create index clicks_program_id_created_at_index on clicks (program_id, created_at)');
}
