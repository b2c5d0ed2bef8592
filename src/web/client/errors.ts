import { ApiError, NetworkError } from './api'

/**
 * Errors as plain sentences for people. `doing` names what failed, for the
 * cases where the server's code alone does not say it ("generations").
 */
export function sentence(
  error: unknown,
  doing: 'generations' | 'sign-in' | 'upload' | 'request',
): string {
  if (error instanceof NetworkError)
    return 'The server cannot be reached. Check your connection and try again.'
  if (!(error instanceof ApiError)) return 'Something went wrong. Please try again.'
  const seconds = error.retryAfter ?? retryAfterOf(error.details)
  const wait = seconds ? `try again in ${plural(seconds, 'second')}` : 'try again shortly'
  switch (error.code) {
    case 'insufficient_credits': {
      const d = error.details as { required?: number; available?: number } | undefined
      if (typeof d?.required === 'number' && typeof d.available === 'number')
        return `You need ${plural(d.required - d.available, 'more credit')} for this: it costs ${d.required} and your balance is ${d.available}.`
      return 'You do not have enough credits for this.'
    }
    case 'unsupported_media_type':
      return doing === 'upload' ? 'That file is not a JPEG, PNG or WebP image.' : error.message
    case 'payload_too_large':
      return doing === 'upload' ? 'That image is too large to upload.' : error.message
    case 'rate_limited':
      if (doing === 'upload') return `Too many uploads; ${wait}.`
      if (doing === 'generations') return `Too many generations right now; ${wait}.`
      if (doing === 'sign-in') return `Too many sign-in attempts; ${wait}.`
      return `Too many requests right now; ${wait}.`
    case 'unavailable':
      return `The service is busy; ${wait}.`
    case 'unauthorized':
      return doing === 'sign-in'
        ? 'That email and password do not match an account.'
        : 'Your session has ended. Please sign in again.'
    case 'conflict':
      return doing === 'sign-in'
        ? 'An account with this email already exists. Sign in instead.'
        : 'This request is already being handled. Please wait a moment.'
    case 'validation_failed':
      return `Please check the form: ${firstIssue(error.details) ?? error.message}.`
    default:
      return error.message
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function retryAfterOf(details: unknown): number | undefined {
  const n = (details as { retryAfter?: unknown } | undefined)?.retryAfter
  return typeof n === 'number' && n > 0 ? n : undefined
}

function firstIssue(details: unknown): string | undefined {
  if (!Array.isArray(details) || details.length === 0) return undefined
  const issue = details[0] as { path?: string; message?: string }
  const field = issue.path?.replace(/^\//, '').replaceAll('/', ' ')
  return [field, issue.message?.replace(/\.$/, '')].filter(Boolean).join(': ')
}
