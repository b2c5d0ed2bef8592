import { describe, expect, it } from 'bun:test'
import {
  makeCircuitBreaker,
  type BreakerState,
} from '../../src/generation/renderers/circuit-breaker'
import { RetryLater } from '../../src/generation/renderers/renderer'
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from '../../src/generation/renderers/retry-after'
import { makeSemaphore } from '../../src/generation/renderers/semaphore'

function clockedBreaker() {
  let t = 1_000
  const changes: Array<[BreakerState, BreakerState]> = []
  const breaker = makeCircuitBreaker({
    failureThreshold: 2,
    cooldownMs: 100,
    now: () => t,
    onStateChange: (to, from) => changes.push([from, to]),
  })
  return { breaker, changes, advance: (ms: number) => (t += ms) }
}

function refusal(fn: () => unknown): RetryLater {
  try {
    fn()
  } catch (err) {
    if (err instanceof RetryLater) return err
    throw err
  }
  throw new Error('expected a RetryLater')
}

describe('circuit breaker', () => {
  it('walks closed → open → half-open → closed, reporting each transition', () => {
    const { breaker, changes, advance } = clockedBreaker()
    breaker.acquire().failure()
    expect(breaker.state()).toBe('closed')
    breaker.acquire().failure()
    expect(breaker.state()).toBe('open')
    advance(40)
    expect(refusal(() => breaker.acquire()).retryAfterMs).toBe(60)
    advance(60)
    expect(breaker.state()).toBe('half-open')
    breaker.acquire().success()
    expect(breaker.state()).toBe('closed')
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ])
  })

  it('lets exactly one probe out while half-open; a released probe frees the slot', () => {
    const { breaker, advance } = clockedBreaker()
    breaker.acquire().failure()
    breaker.acquire().failure()
    advance(100)
    const probe = breaker.acquire()
    refusal(() => breaker.acquire())
    probe.release()
    const next = breaker.acquire()
    next.failure()
    expect(breaker.state()).toBe('open')
    expect(refusal(() => breaker.check()).retryAfterMs).toBe(100)
  })

  it('ignores outcomes of permits taken before the latest transition', () => {
    const { breaker, advance } = clockedBreaker()
    const slow = breaker.acquire()
    breaker.acquire().failure()
    breaker.acquire().failure()
    slow.success() // a call from before the breaker opened cannot close it
    expect(breaker.state()).toBe('open')
    advance(100)
    const probe = breaker.acquire()
    probe.success()
    probe.failure() // a permit reports once
    expect(breaker.state()).toBe('closed')
  })
})

describe('parseRetryAfter', () => {
  const now = Date.parse('2030-01-01T00:00:00Z')
  it('reads delay-seconds and HTTP-dates, and ignores anything else', () => {
    expect(parseRetryAfter('2', now)).toBe(2000)
    expect(parseRetryAfter(' 0 ', now)).toBe(0)
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:30 GMT', now)).toBe(30_000)
    expect(parseRetryAfter('Mon, 31 Dec 2029 23:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter('99999999', now)).toBe(MAX_RETRY_AFTER_MS)
    for (const junk of [null, undefined, '', '-1', '1.5', 'soon'])
      expect(parseRetryAfter(junk, now)).toBeUndefined()
  })
})

describe('semaphore', () => {
  it('grants in arrival order and ignores a second release', async () => {
    const slots = makeSemaphore(1)
    const signal = new AbortController().signal
    const first = await slots.acquire(signal)
    const order: string[] = []
    const a = slots.acquire(signal).then((release) => (order.push('a'), release))
    const b = slots.acquire(signal).then((release) => (order.push('b'), release))
    first()
    first()
    const releaseA = await a
    expect(slots.waiting()).toBe(1)
    expect(slots.inFlight()).toBe(1)
    releaseA()
    ;(await b)()
    expect(order).toEqual(['a', 'b'])
    expect(slots.inFlight()).toBe(0)
  })
})
