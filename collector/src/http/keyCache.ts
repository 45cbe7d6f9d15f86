/**
 * A short-lived cache of key → program lookups, so the hot browser endpoints do not
 * hit the database for the key on every request. Entries live a few seconds: a
 * revoked key or a changed setting takes effect within KEY_CACHE_TTL_MS.
 */
export const KEY_CACHE_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

/** Bumped when a program or key changes in this process: older entries are stale at once. */
let generation = 0;
export function invalidateKeyCaches(): void {
  generation++;
}

/** Values are never `undefined`: `peek` answers `undefined` for a miss. */
export class TtlCache<V extends NonNullable<unknown> | null> {
  private readonly entries = new Map<string, { value: V; expires: number; generation: number }>();

  constructor(private readonly ttlMs = KEY_CACHE_TTL_MS) {}

  /** The fresh value for `key`, or undefined: lets a hot path skip a promise on a hit. */
  peek(key: string): V | undefined {
    const hit = this.entries.get(key);
    return hit && hit.expires > Date.now() && hit.generation === generation ? hit.value : undefined;
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.peek(key);
    if (hit !== undefined) return hit;
    const now = Date.now();
    const value = await load();
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(key, { value, expires: now + this.ttlMs, generation });
    return value;
  }

  clear(): void {
    this.entries.clear();
  }
}
