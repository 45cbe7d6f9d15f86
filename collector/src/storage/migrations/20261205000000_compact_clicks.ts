/**
 * Compact clicks (the table grows by every landing; a click took about 620 bytes):
 * - user agents move to a dictionary (`user_agents`): a click keeps a 4-byte id
 *   instead of ~120 bytes of text;
 * - the IP hash is kept as 16 bytes (`ipKeySql`: the MD5 of the collector's hash)
 *   instead of 32 characters of text;
 * - participant_id goes: the code says whose click it is;
 * - the indexes start from the code or the visitor id, without program_id, and the
 *   "same IP and code within the hour" index is kept on recent months only
 *   (storage/clickPartitions.ts).
 * Columns are ordered so that fixed-width ones need no padding.
 *
 * The rows are copied out, the table made again with its partitions, and copied back
 * (`rebuildClicks`).
 */
import type { Knex } from 'knex';
import { ipKeySql, rebuildClicks } from '../clickPartitions.ts';

const COLUMNS = `id bigint not null default nextval('clicks_id_seq'),
  created_at timestamptz not null default now(),
  program_id uuid not null,
  code_id uuid not null,
  user_agent_id int,
  ip_hash bytea,
  vid text,
  url text,
  referrer text`;

const COPY = 'id, created_at, program_id, code_id, user_agent_id, ip_hash, vid, url, referrer';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('create table user_agents (id serial primary key, user_agent text not null unique)');
  await knex.raw('insert into user_agents (user_agent) select distinct user_agent from clicks where user_agent is not null order by 1');
  await rebuildClicks(knex, {
    columns: COLUMNS,
    select: `select k.id, k.created_at, k.program_id, k.code_id, u.id as user_agent_id, ${ipKeySql('k.ip_hash')} as ip_hash, k.vid, k.url, k.referrer
       from clicks k left join user_agents u on u.user_agent = k.user_agent`,
    copy: COPY,
  });
}

export async function down(knex: Knex): Promise<void> {
  // The hashes cannot be turned back: down-migrated clicks keep the 16-byte keys as hex.
  await rebuildClicks(knex, {
    columns: `id bigint not null default nextval('clicks_id_seq'), program_id uuid not null, code_id uuid not null, participant_id uuid not null,
     vid text, url text, referrer text, ip_hash text, user_agent text, created_at timestamptz not null default now()`,
    select: `select k.id, k.program_id, k.code_id, c.participant_id, k.vid, k.url, k.referrer, encode(k.ip_hash, 'hex') as ip_hash,
            u.user_agent, k.created_at
       from clicks k join codes c on c.id = k.code_id left join user_agents u on u.id = k.user_agent_id`,
    copy: 'id, program_id, code_id, participant_id, vid, url, referrer, ip_hash, user_agent, created_at',
    // The indexes as the earlier migrations left them (their own downs drop them by these names).
    indexes: [
      'create index clicks_visitor_code on clicks (program_id, vid, code_id, created_at)',
      'create index clicks_code_ip on clicks (program_id, code_id, ip_hash, created_at)',
      'create index clicks_unclaimed on clicks (program_id, code_id, ip_hash, created_at) where vid is null',
      'create index clicks_created_brin on clicks using brin (created_at)',
    ],
  });
  await knex.raw('drop table user_agents');
}
