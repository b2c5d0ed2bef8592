import { RetryLater } from './renderer'

/**
 * A circuit breaker around one provider.
 *
 *   closed ──(failureThreshold consecutive failures)──▶ open
 *   open ──(cooldownMs elapsed)──▶ half-open
 *   half-open ──(the single probe succeeds)──▶ closed
 *   half-open ──(the single probe fails)──▶ open, for a fresh cooldown
 *
 * Callers take a permit and report exactly one outcome on it: success(),
 * failure(), or release() when the call ended neither way (its caller gave
 * up). While open, acquire() fails fast with RetryLater(remaining cooldown);
 * while half-open, only one permit (the probe) is out at a time. A permit
 * taken before the latest transition reports into the void, so a slow call
 * from before the breaker opened cannot close it. No timers: open turns
 * half-open by the clock when next asked, so there is nothing to stop.
 */
export type BreakerState = 'closed' | 'open' | 'half-open'

export type BreakerPermit = { success(): void; failure(): void; release(): void }

export type CircuitBreaker = {
  state(): BreakerState
  /** Throws RetryLater if a call would be refused now; takes nothing. */
  check(): void
  /** A permit to call the provider, or RetryLater. */
  acquire(): BreakerPermit
}

export type CircuitBreakerDeps = {
  /** Consecutive failures that open the breaker. Default 5. */
  failureThreshold?: number
  /** How long it stays open before one probe is let through. Default 30_000 ms. */
  cooldownMs?: number
  /** Called on every transition, e.g. to set a gauge or log. */
  onStateChange?: (to: BreakerState, from: BreakerState) => void
  now?: () => number
}

export function makeCircuitBreaker(deps: CircuitBreakerDeps = {}): CircuitBreaker {
  const threshold = Math.max(1, deps.failureThreshold ?? 5)
  const cooldownMs = Math.max(0, deps.cooldownMs ?? 30_000)
  const now = deps.now ?? Date.now
  let mode: BreakerState = 'closed'
  let epoch = 0
  let failures = 0
  let openedAt = 0
  let probing = false

  const moveTo = (to: BreakerState) => {
    const from = mode
    mode = to
    epoch++
    failures = 0
    probing = false
    if (to === 'open') openedAt = now()
    deps.onStateChange?.(to, from)
  }
  const refresh = () => {
    if (mode === 'open' && now() - openedAt >= cooldownMs) moveTo('half-open')
  }
  const check = () => {
    refresh()
    if (mode === 'open') {
      const remaining = Math.max(0, openedAt + cooldownMs - now())
      throw new RetryLater('the provider circuit is open', remaining)
    }
    if (mode === 'half-open' && probing)
      throw new RetryLater('the provider circuit is half-open and probing', cooldownMs)
  }

  return {
    state() {
      refresh()
      return mode
    },
    check,
    acquire() {
      check()
      const isProbe = mode === 'half-open'
      if (isProbe) probing = true
      const taken = epoch
      let settled = false
      const settle = () => {
        const current = !settled && taken === epoch
        settled = true
        return current
      }
      return {
        success() {
          if (!settle()) return
          if (isProbe) moveTo('closed')
          else failures = 0
        },
        failure() {
          if (!settle()) return
          if (isProbe) moveTo('open')
          else if (++failures >= threshold) moveTo('open')
        },
        release() {
          if (settle() && isProbe) probing = false
        },
      }
    },
  }
}
