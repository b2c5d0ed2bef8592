import { PermanentError } from '../../errors'
import { RetryLater } from '../renderers/renderer'

/**
 * What happens to an item whose render failed: pure, so it is tested without
 * a database. A permanent error (a pose that cannot be drawn, a refused
 * input) fails at once with its own code; any other error is retried after
 * an exponential backoff with jitter (base × 2^(attempt−1) × 0.5..1.5, at
 * most five minutes, never sooner than a renderer's Retry-After) until the
 * attempts are spent, and then fails as `render_failed` or `render_timeout`.
 */
export type RetryDecision =
  { retry: true; code: string; delayMs: number } | { retry: false; code: string; message: string }

export type RetryPolicy = {
  maxAttempts: number
  retryBaseMs: number
}

export const MAX_BACKOFF_MS = 5 * 60_000

/** What a user sees for a failure that is not theirs to fix. */
export const RENDER_FAILED_MESSAGE = 'The image could not be rendered'

/** What a user sees of an item waiting for its next attempt (the failure's own text is logged). */
export const RENDER_RETRY_MESSAGE = 'The image could not be rendered yet; it will be tried again'

/**
 * `attempts` counts the attempt that just failed (the claim adds one);
 * `random` is in [0, 1), Math.random in production.
 */
export function decideRetry(
  error: Error,
  attempts: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): RetryDecision {
  if (error instanceof PermanentError)
    return { retry: false, code: error.code, message: error.message }
  const code = error.name === 'TimeoutError' ? 'render_timeout' : 'render_failed'
  if (attempts >= policy.maxAttempts) return { retry: false, code, message: RENDER_FAILED_MESSAGE }
  const backoff = Math.min(
    MAX_BACKOFF_MS,
    policy.retryBaseMs * 2 ** (attempts - 1) * (0.5 + random()),
  )
  const asked = error instanceof RetryLater ? (error.retryAfterMs ?? 0) : 0
  return { retry: true, code, delayMs: Math.max(backoff, asked) }
}
