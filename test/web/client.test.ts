import { describe, expect, it } from 'bun:test'
import { ApiError, NetworkError } from '../../src/web/client/api'
import { sentence } from '../../src/web/client/errors'
import { backoffMs } from '../../src/web/client/realtime'

/** The browser client's pure parts, without a browser: backoff and error sentences. */
describe('reconnect backoff', () => {
  it('doubles per attempt, with jitter in the upper half of each step, capped at 15 s', () => {
    expect(backoffMs(0, 0)).toBe(250)
    expect(backoffMs(0, 1)).toBe(500)
    expect(backoffMs(3, 0)).toBe(2000)
    expect(backoffMs(3, 1)).toBe(4000)
    expect(backoffMs(20, 0)).toBe(7500)
    expect(backoffMs(20, 1)).toBe(15_000)
    const delays = new Set(Array.from({ length: 20 }, () => backoffMs(4)))
    expect(delays.size).toBeGreaterThan(1)
  })
})

describe('error sentences', () => {
  const apiError = (status: number, code: string, details?: unknown, retryAfter?: number) =>
    new ApiError(status, code, 'server message', details, retryAfter)

  it('says how many credits are missing on 402', () => {
    const error = apiError(402, 'insufficient_credits', { required: 240, available: 180 })
    expect(sentence(error, 'generations')).toBe(
      'You need 60 more credits for this: it costs 240 and your balance is 180.',
    )
    const one = apiError(402, 'insufficient_credits', { required: 30, available: 29 })
    expect(sentence(one, 'generations')).toStartWith('You need 1 more credit for this')
  })

  it('says when to try again on 429, from Retry-After or the details', () => {
    expect(sentence(apiError(429, 'rate_limited', { retryAfter: 9 }, 12), 'generations')).toBe(
      'Too many generations right now; try again in 12 seconds.',
    )
    expect(sentence(apiError(429, 'rate_limited', { retryAfter: 1 }), 'generations')).toBe(
      'Too many generations right now; try again in 1 second.',
    )
    expect(sentence(apiError(429, 'rate_limited'), 'sign-in')).toBe(
      'Too many sign-in attempts; try again shortly.',
    )
  })

  it('explains sign-in failures, validation and a lost network in words', () => {
    expect(sentence(apiError(401, 'unauthorized'), 'sign-in')).toBe(
      'That email and password do not match an account.',
    )
    expect(sentence(apiError(409, 'conflict'), 'sign-in')).toStartWith(
      'An account with this email already exists',
    )
    const invalid = apiError(422, 'validation_failed', [{ path: '/prompt', message: 'Too short.' }])
    expect(sentence(invalid, 'generations')).toBe('Please check the form: prompt: Too short.')
    expect(sentence(new NetworkError('x'), 'request')).toStartWith('The server cannot be reached')
  })
})
