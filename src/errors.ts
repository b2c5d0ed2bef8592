/**
 * The one error family. Every error that reaches a caller is an AppError with
 * a stable code, an HTTP status and public details; http/errors.ts renders it
 * into API.md's shape, and the WebSocket gateway sends the same code.
 */
export type ErrorDetails = Record<string, unknown> | ReadonlyArray<unknown>

export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly details?: ErrorDetails,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, { cause: options?.cause })
    this.name = new.target.name
    this.headers = options?.headers ?? {}
  }
  readonly headers: Record<string, string>
}

export class BadRequest extends AppError {
  constructor(message = 'The request could not be parsed', cause?: unknown) {
    super('bad_request', 400, message, undefined, { cause })
  }
}

export class Unauthorized extends AppError {
  constructor(message = 'Missing or invalid credentials') {
    super('unauthorized', 401, message)
  }
}

export class InsufficientCredits extends AppError {
  constructor(required: number, available: number) {
    super('insufficient_credits', 402, 'Not enough credits for this request', {
      required,
      available,
    })
  }
}

export class Forbidden extends AppError {
  constructor(message = 'You are not allowed to do this') {
    super('forbidden', 403, message)
  }
}

export class NotFound extends AppError {
  constructor(what = 'Resource') {
    super('not_found', 404, `${what} not found`)
  }
}

export class IdempotencyConflict extends AppError {
  constructor(message = 'This Idempotency-Key was already used with a different request') {
    super('idempotency_conflict', 409, message)
  }
}

export class Conflict extends AppError {
  /** With `retryAfterSeconds`, the conflict ends by itself then: Retry-After says when. */
  constructor(message: string, retryAfterSeconds?: number) {
    const seconds =
      retryAfterSeconds === undefined ? undefined : Math.max(1, Math.ceil(retryAfterSeconds))
    super(
      'conflict',
      409,
      message,
      seconds === undefined ? undefined : { retryAfter: seconds },
      seconds === undefined ? undefined : { headers: { 'retry-after': String(seconds) } },
    )
  }
}

export class PayloadTooLarge extends AppError {
  constructor(limit: number) {
    super('payload_too_large', 413, `The request body is larger than ${limit} bytes`, { limit })
  }
}

export class UnsupportedMediaType extends AppError {
  constructor(message = 'This content type is not supported') {
    super('unsupported_media_type', 415, message)
  }
}

export type ValidationIssue = { path: string; message: string }

export class ValidationFailed extends AppError {
  constructor(issues: ValidationIssue[], message = 'The request is not valid') {
    super('validation_failed', 422, message, issues)
  }
}

export class RateLimited extends AppError {
  constructor(retryAfterSeconds: number, message = 'Too many requests') {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds))
    super(
      'rate_limited',
      429,
      message,
      { retryAfter: seconds },
      {
        headers: { 'retry-after': String(seconds) },
      },
    )
  }
}

export class Unavailable extends AppError {
  constructor(
    message = 'The service is unavailable, retry shortly',
    retryAfterSeconds = 1,
    cause?: unknown,
  ) {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds))
    super(
      'unavailable',
      503,
      message,
      { retryAfter: seconds },
      {
        cause,
        headers: { 'retry-after': String(seconds) },
      },
    )
  }
}

/**
 * A batch refused by the fencing check: its owner's epoch is no longer the
 * user's (another instance claimed it; DESIGN.md invariant 2). Nothing was
 * written. The actor runtime re-routes such commands to the current owner;
 * one that reaches a caller is a 503, safe to retry.
 */
export class StaleEpoch extends Unavailable {
  constructor(cause?: unknown) {
    super('This account moved to another instance; retry', 1, cause)
  }
}

/** Work that must not be retried (a bad input to a renderer, a refused upload). */
export class PermanentError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'PermanentError'
  }
}

/** Normalizes anything caught into an Error, keeping the original as `cause`. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value
  return new Error(typeof value === 'string' ? value : 'non-error thrown', { cause: value })
}

/** For exhaustive switches: `default: throw unreachable(x)`. */
export function unreachable(value: never): Error {
  return new Error(`unreachable: ${JSON.stringify(value)}`)
}
