import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'

/**
 * Fixed-window counters. In memory for one instance; in Redis when REDIS_URL
 * is set, so every instance counts against the same window.
 */
export type RateDecision = { allowed: boolean; retryAfterSeconds: number }

export type RateLimiter = {
  hit(scope: string, subject: string, limit: number, windowSeconds: number): Promise<RateDecision>
  close(): void
}

/** Bounds the in-memory table: expired windows are swept once it reaches this size. */
const MEMORY_SWEEP_AT = 10_000

export function makeMemoryRateLimiter(now = () => Date.now()): RateLimiter {
  const windows = new Map<string, { count: number; resetAt: number }>()
  return {
    async hit(scope, subject, limit, windowSeconds) {
      const t = now()
      if (windows.size >= MEMORY_SWEEP_AT)
        for (const [k, w] of windows) if (w.resetAt <= t) windows.delete(k)
      const key = `${scope}:${subject}`
      let w = windows.get(key)
      if (!w || w.resetAt <= t) {
        w = { count: 0, resetAt: t + windowSeconds * 1000 }
        windows.set(key, w)
      }
      w.count++
      return { allowed: w.count <= limit, retryAfterSeconds: Math.ceil((w.resetAt - t) / 1000) }
    },
    close: () => windows.clear(),
  }
}

export function makeRedisRateLimiter(redis: Redis, keys: RedisKeys): RateLimiter {
  return {
    async hit(scope, subject, limit, windowSeconds) {
      const window = Math.floor(Date.now() / 1000 / windowSeconds)
      const key = keys.rateLimit(scope, subject, window)
      const [count] = (await redis
        .multi()
        .incr(key)
        .expire(key, windowSeconds + 1)
        .exec()) as unknown as [number]
      const resetAt = (window + 1) * windowSeconds
      return {
        allowed: Number(count) <= limit,
        retryAfterSeconds: Math.max(1, Math.ceil(resetAt - Date.now() / 1000)),
      }
    },
    close: () => {},
  }
}

/**
 * The Redis limiter while Redis answers; while it does not (not connected,
 * or no answer within `timeoutMs`), this instance's own in-memory counters.
 * Never unlimited and never waiting on Redis longer than `timeoutMs`: during
 * an outage each instance allows at most the limit per window, counted from
 * when it fell back. A Redis that is connected but silent (a stalled network)
 * costs one `timeoutMs` wait, not one per request: after a miss, Redis is
 * skipped for `skipMs` (default 5 000 ms), then tried again.
 */
export type FallbackRateLimiterDeps = {
  redis: Redis
  keys: RedisKeys
  /** How long a decision may wait on Redis before it is made in memory. */
  timeoutMs: number
  /** How long Redis is skipped after it missed a deadline (default 5 000 ms). */
  skipMs?: number
  onFallback?: (error: unknown) => void
}

export function makeFallbackRateLimiter(
  deps: FallbackRateLimiterDeps,
): RateLimiter & { readonly fallbacks: number } {
  const skipMs = deps.skipMs ?? 5000
  let skipUntil = 0
  const primary = makeRedisRateLimiter(deps.redis, deps.keys)
  const local = makeMemoryRateLimiter()
  let fallbacks = 0
  const fallBack = (error: unknown, ...args: Parameters<RateLimiter['hit']>) => {
    fallbacks++
    deps.onFallback?.(error)
    return local.hit(...args)
  }
  return {
    async hit(scope, subject, limit, windowSeconds) {
      // not connected: no command to wait for (it would sit in the offline queue)
      if (!deps.redis.isReady)
        return fallBack(new Error('redis is not connected'), scope, subject, limit, windowSeconds)
      if (performance.now() < skipUntil)
        return fallBack(
          new Error('redis missed a recent deadline'),
          scope,
          subject,
          limit,
          windowSeconds,
        )
      try {
        return await withDeadline(deps.timeoutMs, 'rate limit', () =>
          primary.hit(scope, subject, limit, windowSeconds),
        )
      } catch (error) {
        skipUntil = performance.now() + skipMs
        return fallBack(error, scope, subject, limit, windowSeconds)
      }
    },
    get fallbacks() {
      return fallbacks
    },
    close: () => local.close(),
  }
}
