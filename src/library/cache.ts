import type { Metrics } from '../obs/metrics'

/**
 * A bounded cache of pose reads: at most `maxEntries` values (least recently
 * used evicted first), each for at most `ttlMs`. Any admin write clears all of
 * it, on every instance (library/invalidation.ts): the library is small and
 * rarely written, so a whole clear is simpler than tracking which pages held a
 * pose, and never serves a stale one.
 *
 * A read that started before a clear must not store what it read after the
 * clear (it may be the old row): each clear bumps `epoch`, and a load stores
 * its value only when the epoch it started under is still current.
 */
export type PoseCache = ReturnType<typeof makePoseCache>

export type PoseCacheOptions = {
  /** Values kept at most (default 1000). */
  maxEntries?: number
  /** Milliseconds a value is served, the bound on staleness if a clear were missed (default 60 s). */
  ttlMs?: number
  metrics?: Metrics
  now?: () => number
}

export function makePoseCache(options: PoseCacheOptions = {}) {
  const maxEntries = options.maxEntries ?? 1000
  const ttlMs = options.ttlMs ?? 60_000
  const now = options.now ?? Date.now
  // a Map iterates in insertion order: re-inserting on a hit makes the first key the least recent
  const entries = new Map<string, { value: unknown; expiresAt: number }>()
  const clearListeners = new Set<() => void>()
  let epoch = 0
  let hits = 0
  let misses = 0

  const requests = options.metrics?.counter('pose_cache_requests_total', 'Pose cache lookups', [
    'result',
  ])
  options.metrics?.gauge('pose_cache_entries', 'Values in the pose cache', [], () => entries.size)
  options.metrics?.gauge(
    'pose_cache_hit_ratio',
    'Pose cache hits / lookups since start',
    [],
    () => hits / Math.max(1, hits + misses),
  )

  function lookup(key: string): { value: unknown } | undefined {
    const entry = entries.get(key)
    if (!entry) return undefined
    entries.delete(key)
    if (entry.expiresAt <= now()) return undefined
    entries.set(key, entry)
    return entry
  }

  function store(key: string, value: unknown) {
    entries.set(key, { value, expiresAt: now() + ttlMs })
    if (entries.size > maxEntries) entries.delete(entries.keys().next().value!)
  }

  return {
    /** The cached value of `key`, or what `load` returns (stored unless a clear came meanwhile). */
    async get<T>(key: string, load: () => Promise<T>): Promise<T> {
      const hit = lookup(key)
      if (hit) {
        hits++
        requests?.inc({ result: 'hit' })
        return hit.value as T
      }
      misses++
      requests?.inc({ result: 'miss' })
      const startedUnder = epoch
      const value = await load()
      if (startedUnder === epoch) store(key, value)
      return value
    },
    /** Several values at once: `load` gets the ids not cached and answers for each of them. */
    async getMany<T>(
      prefix: string,
      ids: readonly string[],
      load: (missing: string[]) => Promise<Map<string, T>>,
    ): Promise<Map<string, T>> {
      const found = new Map<string, T>()
      const missing: string[] = []
      for (const id of new Set(ids)) {
        const hit = lookup(prefix + id)
        if (hit) found.set(id, hit.value as T)
        else missing.push(id)
      }
      hits += found.size
      misses += missing.length
      if (found.size > 0) requests?.inc({ result: 'hit' }, found.size)
      if (missing.length === 0) return found
      requests?.inc({ result: 'miss' }, missing.length)
      const startedUnder = epoch
      const loaded = await load(missing)
      for (const id of missing) {
        const value = loaded.get(id) as T
        found.set(id, value)
        if (startedUnder === epoch) store(prefix + id, value)
      }
      return found
    },
    clear() {
      epoch++
      entries.clear()
      for (const listener of clearListeners) listener()
    },
    /** Calls `listener` after each clear; returns the unsubscribe function. */
    onClear(listener: () => void) {
      clearListeners.add(listener)
      return () => void clearListeners.delete(listener)
    },
    stats: () => ({ entries: entries.size, hits, misses, maxEntries, ttlMs }),
  }
}
