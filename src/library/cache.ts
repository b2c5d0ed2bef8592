import type { Counter } from 'prom-client'
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

export type PoseCacheDeps = {
  /** Values kept at most (default 1000). */
  maxEntries?: number
  /** Milliseconds a value is served, the bound on staleness if a clear were missed (default 60 s). */
  ttlMs?: number
  metrics?: Metrics
  now?: () => number
}

/** The cache's entries and figures, which the functions below read and move. */
type Cache = {
  // a Map iterates in insertion order: re-inserting on a hit makes the first key the least recent
  entries: Map<string, { value: unknown; expiresAt: number }>
  maxEntries: number
  ttlMs: number
  now: () => number
  /** Bumped by each clear: a load stores its value only under the epoch it started in. */
  epoch: number
  hits: number
  misses: number
  requests: Counter<'result'> | undefined
}

export function makePoseCache(deps: PoseCacheDeps = {}) {
  const c: Cache = {
    entries: new Map(),
    maxEntries: deps.maxEntries ?? 1000,
    ttlMs: deps.ttlMs ?? 60_000,
    now: deps.now ?? Date.now,
    epoch: 0,
    hits: 0,
    misses: 0,
    requests: undefined,
  }
  c.requests = cacheMetrics(deps.metrics, c)
  const clearListeners = new Set<() => void>()

  return {
    /** The cached value of `key`, or what `load` returns (stored unless a clear came meanwhile). */
    async get<T>(key: string, load: () => Promise<T>): Promise<T> {
      const hit = lookup(c, key)
      if (hit) {
        c.hits++
        c.requests?.inc({ result: 'hit' })
        return hit.value as T
      }
      c.misses++
      c.requests?.inc({ result: 'miss' })
      const startedUnder = c.epoch
      const value = await load()
      if (startedUnder === c.epoch) store(c, key, value)
      return value
    },
    /** Several values at once: `load` gets the ids not cached and answers for each of them. */
    getMany<T>(
      prefix: string,
      ids: readonly string[],
      load: (missing: string[]) => Promise<Map<string, T>>,
    ): Promise<Map<string, T>> {
      return getMany(c, prefix, ids, load)
    },
    clear() {
      c.epoch++
      c.entries.clear()
      for (const listener of clearListeners) listener()
    },
    /** Calls `listener` after each clear; returns the unsubscribe function. */
    onClear(listener: () => void) {
      clearListeners.add(listener)
      return () => void clearListeners.delete(listener)
    },
    stats: () => ({
      entries: c.entries.size,
      hits: c.hits,
      misses: c.misses,
      maxEntries: c.maxEntries,
      ttlMs: c.ttlMs,
    }),
  }
}

/** The lookup counter, and the size and hit ratio read at scrape time. */
function cacheMetrics(metrics: Metrics | undefined, c: Cache) {
  const requests = metrics?.counter('pose_cache_requests_total', 'Pose cache lookups', ['result'])
  metrics?.gauge('pose_cache_entries', 'Values in the pose cache', [], () => c.entries.size)
  metrics?.gauge(
    'pose_cache_hit_ratio',
    'Pose cache hits / lookups since start',
    [],
    () => c.hits / Math.max(1, c.hits + c.misses),
  )
  return requests
}

function lookup(c: Cache, key: string): { value: unknown } | undefined {
  const entry = c.entries.get(key)
  if (!entry) return undefined
  c.entries.delete(key)
  if (entry.expiresAt <= c.now()) return undefined
  c.entries.set(key, entry)
  return entry
}

function store(c: Cache, key: string, value: unknown) {
  c.entries.set(key, { value, expiresAt: c.now() + c.ttlMs })
  if (c.entries.size > c.maxEntries) c.entries.delete(c.entries.keys().next().value!)
}

async function getMany<T>(
  c: Cache,
  prefix: string,
  ids: readonly string[],
  load: (missing: string[]) => Promise<Map<string, T>>,
): Promise<Map<string, T>> {
  const found = new Map<string, T>()
  const missing: string[] = []
  for (const id of new Set(ids)) {
    const hit = lookup(c, prefix + id)
    if (hit) found.set(id, hit.value as T)
    else missing.push(id)
  }
  c.hits += found.size
  c.misses += missing.length
  if (found.size > 0) c.requests?.inc({ result: 'hit' }, found.size)
  if (missing.length === 0) return found
  c.requests?.inc({ result: 'miss' }, missing.length)
  const startedUnder = c.epoch
  const loaded = await load(missing)
  for (const id of missing) {
    const value = loaded.get(id) as T
    found.set(id, value)
    if (startedUnder === c.epoch) store(c, prefix + id, value)
  }
  return found
}
