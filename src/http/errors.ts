import type { Logger } from 'pino'
import {
  AppError,
  BadRequest,
  NotFound,
  PayloadTooLarge,
  UnsupportedMediaType,
  ValidationFailed,
  toError,
} from '../errors'
import { toDbAppError } from '../db/errors'
import { SAFE_TEXT_MESSAGE, SAFE_TEXT_PATTERN, isSafeText } from './text'

/**
 * The one place an error becomes a response. AppErrors keep their code,
 * status and details; Elysia's own failures are mapped to the same family;
 * anything else is a 500 that says only its request id.
 */
export type ErrorBody = {
  error: { code: string; message: string; requestId: string; details?: unknown }
}

export function toAppError(code: string | number, error: unknown): AppError | undefined {
  if (error instanceof AppError) return error
  // errors thrown by our parse hook (413 on a long chunked body) arrive wrapped
  const cause = (error as { cause?: unknown } | undefined)?.cause
  if (cause instanceof AppError) return cause
  // a database failure, by the one table (src/db/errors.ts): down, restarting or past a
  // deadline is a 503 with Retry-After, never a 500; a value it refuses is the request's 4xx
  const fromDb = toDbAppError(error)
  if (fromDb) return fromDb
  switch (code) {
    case 'NOT_FOUND':
      return new NotFound('Route')
    case 'PARSE':
      return new BadRequest('The request body could not be parsed')
    case 'VALIDATION': {
      const e = error as {
        type?: string
        all?: {
          path?: string
          summary?: string
          message?: string
          value?: unknown
          schema?: { pattern?: string }
        }[]
      }
      if (e.type === 'response') return undefined // our bug, not the caller's: a 500
      // ids are opaque (API.md): a path whose id could never name anything names nothing
      if (e.type === 'params') return new NotFound()
      // a header's path says it is one, as the idempotency key's own check does
      const prefix = e.type === 'headers' ? '/headers' : ''
      const issues = (e.all ?? []).map((i) => ({
        path: prefix + (i.path || '/'),
        // the field's schema carries the safe-text pattern whatever check failed (a format, a
        // length): the safe-text message only when the text itself is what breaks it
        message:
          i.schema?.pattern === SAFE_TEXT_PATTERN &&
          typeof i.value === 'string' &&
          !isSafeText(i.value)
            ? SAFE_TEXT_MESSAGE
            : (i.summary ?? i.message ?? 'invalid'),
      }))
      return new ValidationFailed(issues.length ? issues : [{ path: '/', message: 'invalid' }])
    }
    case 'INVALID_FILE_TYPE':
      return new UnsupportedMediaType()
    default: {
      // Bun's own body limit, when a listening server refuses a body
      if ((error as { code?: string })?.code === 'ERR_BODY_TOO_LARGE') return new PayloadTooLarge(0)
      return undefined
    }
  }
}

export function renderError(
  code: string | number,
  raw: unknown,
  requestId: string,
  log: Logger,
): { status: number; headers: Record<string, string>; body: ErrorBody } {
  const app = toAppError(code, raw)
  if (!app) {
    const err = toError(raw)
    // compact: some library errors carry whole schemas and validators as fields
    log.error(
      {
        err: {
          type: err.name,
          message: err.message.slice(0, 2000),
          stack: err.stack?.slice(0, 4000),
        },
        requestId,
      },
      'unhandled error',
    )
    return {
      status: 500,
      headers: {},
      body: { error: { code: 'internal', message: 'Something went wrong on our side', requestId } },
    }
  }
  const body: ErrorBody = { error: { code: app.code, message: app.message, requestId } }
  if (app.details !== undefined) body.error.details = app.details
  return { status: app.status, headers: app.headers, body }
}
