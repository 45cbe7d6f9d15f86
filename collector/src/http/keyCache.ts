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

export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number; generation: number }>();

  constructor(private readonly ttlMs = KEY_CACHE_TTL_MS) {}

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.expires > now && hit.generation === generation) return hit.value;
    const value = await load();
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(key, { value, expires: now + this.ttlMs, generation });
    return value;
  }

  clear(): void {
    this.entries.clear();
  }
}
