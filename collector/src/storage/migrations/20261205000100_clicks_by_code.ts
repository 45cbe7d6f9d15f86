/**
 * Clicks without program_id (16 bytes a row): a click names its code, and a code
 * belongs to one program for good, so "the program's clicks" join codes
 * (`clicksOf` in domain/clicks.ts). The rows are copied out, the table made again with
 * its partitions and indexes, and copied back, as in the compact-clicks migration.
 */
import type { Knex } from 'knex';
import { rebuildClicks } from '../clickPartitions.ts';

const COLUMNS = `id bigint not null default nextval('clicks_id_seq'),
  created_at timestamptz not null default now(),
  code_id uuid not null,
  user_agent_id int,
  ip_hash bytea,
  vid text,
  url text,
  referrer text`;

const KEPT = 'id, created_at, code_id, user_agent_id, ip_hash, vid, url, referrer';

export async function up(knex: Knex): Promise<void> {
  await rebuildClicks(knex, { columns: COLUMNS, select: `select ${KEPT} from clicks`, copy: KEPT });
}

export async function down(knex: Knex): Promise<void> {
  await rebuildClicks(knex, {
    columns: COLUMNS.replace('code_id uuid not null,', 'program_id uuid not null,\n  code_id uuid not null,'),
    select: `select k.id, k.created_at, c.program_id, k.code_id, k.user_agent_id, k.ip_hash, k.vid, k.url, k.referrer
       from clicks k join codes c on c.id = k.code_id`,
    copy: 'id, created_at, program_id, code_id, user_agent_id, ip_hash, vid, url, referrer',
  });
}
