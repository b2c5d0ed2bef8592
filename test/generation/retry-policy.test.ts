import { describe, expect, it } from 'bun:test'
import { PermanentError } from '../../src/errors'
import { RetryLater } from '../../src/generation/renderers/renderer'
import {
  MAX_BACKOFF_MS,
  RENDER_FAILED_MESSAGE,
  decideRetry,
} from '../../src/generation/queue/retry-policy'

const policy = { maxAttempts: 3, retryBaseMs: 1000 }
const timeout = () => Object.assign(new Error('timed out'), { name: 'TimeoutError' })

describe('the retry policy', () => {
  it('fails a permanent error at once, with its own code and message', () => {
    const d = decideRetry(new PermanentError('pose_missing', 'gone'), 1, policy)
    expect(d).toEqual({ retry: false, code: 'pose_missing', message: 'gone' })
  })

  it('retries other errors with exponential backoff and jitter of 0.5..1.5', () => {
    expect(decideRetry(new Error('x'), 1, policy, () => 0)).toEqual({
      retry: true,
      code: 'render_failed',
      delayMs: 500,
    })
    expect(decideRetry(new Error('x'), 2, policy, () => 0.5)).toEqual({
      retry: true,
      code: 'render_failed',
      delayMs: 2000,
    })
    const top = decideRetry(new Error('x'), 2, policy, () => 0.999_999)
    expect(top.retry && top.delayMs).toBeCloseTo(3000, 0)
  })

  it('names a timeout render_timeout', () => {
    expect(decideRetry(timeout(), 1, policy, () => 0)).toMatchObject({ code: 'render_timeout' })
  })

  it('waits at least as long as a renderer asks (Retry-After)', () => {
    const d = decideRetry(new RetryLater('busy', 60_000), 1, policy, () => 0)
    expect(d).toEqual({ retry: true, code: 'render_failed', delayMs: 60_000 })
  })

  it('never waits more than five minutes between attempts', () => {
    const d = decideRetry(new Error('x'), 30, { maxAttempts: 50, retryBaseMs: 1000 }, () => 0.5)
    expect(d).toEqual({ retry: true, code: 'render_failed', delayMs: MAX_BACKOFF_MS })
  })

  it('fails once the attempts are spent, with a message that tells the user nothing internal', () => {
    expect(decideRetry(new Error('socket hang up'), 3, policy)).toEqual({
      retry: false,
      code: 'render_failed',
      message: RENDER_FAILED_MESSAGE,
    })
    expect(decideRetry(timeout(), 3, policy)).toEqual({
      retry: false,
      code: 'render_timeout',
      message: RENDER_FAILED_MESSAGE,
    })
  })
})
