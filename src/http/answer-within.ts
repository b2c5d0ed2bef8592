import { ABORT_GRACE_MS } from '../actors/actor-system'
import type { Config } from '../config/config'

/**
 * Bun closes a connection whose handler has not answered within its
 * idleTimeout (10 s unless set), with no response: the client sees a reset.
 * It must outlast the longest a request may take before it answers 503 (an
 * actor batch's deadline and its abort grace, a forward's, a statement's).
 * Bun's maximum is 255 s.
 */
export function answerWithinSeconds(config: Config) {
  const longestMs = Math.max(
    config.ACTOR_BATCH_TIMEOUT_MS + ABORT_GRACE_MS,
    config.ACTOR_FORWARD_TIMEOUT_MS ?? 0,
    config.DB_STATEMENT_TIMEOUT_MS,
  )
  return Math.min(255, Math.ceil(longestMs / 1000) + 5)
}
