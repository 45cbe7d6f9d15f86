/**
 * Refused origins: a page whose origin is not in its program's `origins` gets a
 * generic CORS error in the browser, and the snippet keeps the events for retrying,
 * so nobody notices. The collector says so instead: a warning in its log, and a row
 * per program and origin that the dashboard shows with a one-click "add this origin".
 *
 * A flood of refused requests must not become a flood of writes or log lines: counts
 * gather in memory and are written (and warned about) at most once a minute per
 * program and origin, in each process.
 */
import type { Knex } from 'knex';
import type { RefusedOriginResponse } from '../../../shared/responses.ts';
import type { Logger } from '../logger.ts';
import type { ProgramRow } from './programs.ts';

/** How often, at most, one program and origin is written and logged. */
export const REFUSAL_WRITE_INTERVAL_MS = 60_000;
/** Program and origin pairs remembered in memory; past it, the memory starts over. */
const MAX_TRACKED = 10_000;
/** Rows kept per program: an attacker can send any Origin header, the table must not grow with it. */
export const MAX_REFUSED_ORIGINS = 100;
const MAX_ORIGIN_LENGTH = 255;

interface Tracked {
  /** Refusals since the last write. */
  pending: number;
  writtenAt: number;
}

/** An `Origin` header worth recording: http(s), scheme and host (and port) only, as browsers send it. */
function isRecordable(origin: string): boolean {
  if (origin.length > MAX_ORIGIN_LENGTH) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin;
  } catch {
    return false;
  }
}

/** Adds `count` refusals; a new origin only while the program has room for it. */
const RECORD_SQL = `insert into refused_origins (program_id, origin, count)
  select ?::uuid, ?, ?
  where exists (select 1 from refused_origins where program_id = ?::uuid and origin = ?)
     or (select count(*) from refused_origins where program_id = ?::uuid) < ${MAX_REFUSED_ORIGINS}
  on conflict (program_id, origin) do update set count = refused_origins.count + excluded.count, last_seen = now()`;

export class OriginRefusals {
  private readonly tracked = new Map<string, Tracked>();

  constructor(
    private readonly db: Knex,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Counts a request refused for `origin`. The first one, and the first after each
   * minute, is logged and written together with the ones counted in between.
   */
  async note(program: Pick<ProgramRow, 'id' | 'slug'>, origin: string): Promise<void> {
    const key = `${program.id} ${origin}`;
    const now = this.now();
    const tracked = this.tracked.get(key);
    if (tracked && now - tracked.writtenAt < REFUSAL_WRITE_INTERVAL_MS) {
      tracked.pending++;
      return;
    }
    const count = (tracked?.pending ?? 0) + 1;
    if (this.tracked.size >= MAX_TRACKED) this.tracked.clear();
    this.tracked.set(key, { pending: 0, writtenAt: now });
    this.logger.warn(
      { program: program.slug, programId: program.id, origin, refused: count },
      `refused browser requests from ${origin.slice(0, MAX_ORIGIN_LENGTH)}: not in the origins of program "${program.slug}" (add it in the dashboard's settings if the page is yours)`,
    );
    if (!isRecordable(origin)) return;
    try {
      await this.db.raw(RECORD_SQL, [program.id, origin, count, program.id, origin, program.id]);
    } catch (error) {
      // The request is refused either way; a lost count is not worth a 500.
      this.logger.warn({ err: error, programId: program.id }, 'could not record a refused origin');
    }
  }
}

/** The program's refused origins that are still not allowed, most recently seen first. */
export async function listRefusedOrigins(db: Knex, program: ProgramRow): Promise<RefusedOriginResponse[]> {
  const rows = (await db('refused_origins')
    .where({ program_id: program.id })
    .whereNotIn('origin', program.settings.origins)
    .orderBy('last_seen', 'desc')
    .orderBy('origin')
    .limit(MAX_REFUSED_ORIGINS)
    .select('origin', 'count', 'first_seen', 'last_seen')) as Array<{ origin: string; count: number; first_seen: Date; last_seen: Date }>;
  return rows.map((row) => ({
    origin: row.origin,
    count: Number(row.count),
    firstSeen: row.first_seen.toISOString(),
    lastSeen: row.last_seen.toISOString(),
  }));
}

/** Forgets the refusals of origins the program now allows (after its settings changed). */
export async function forgetAllowedOrigins(db: Knex, program: ProgramRow): Promise<void> {
  if (!program.settings.origins.length) return;
  await db('refused_origins').where({ program_id: program.id }).whereIn('origin', program.settings.origins).delete();
}
