import { AppError, Conflict, StaleEpoch, Unavailable, ValidationFailed } from '../errors'

/**
 * The one classification of database failures. A SQLSTATE class or code (or
 * a client-side connection failure, which has none) maps to what the caller
 * sees: `unavailable` → 503 with Retry-After (the request changed nothing and
 * may be retried), `retry` → run the transaction again (serialization,
 * deadlock), `input` → 422 and `conflict` → 409, the request's own fault (a
 * value Postgres refuses, a constraint it breaks: applying it again would fail
 * again, and it must fail alone, never its neighbours in a batch), `fenced`
 * → StaleEpoch (a stale actor owner's write, refused and re-routed), anything
 * else stays an internal error (a bug of ours).
 */
export type DbFailure = 'unavailable' | 'retry' | 'input' | 'conflict' | 'fenced'

/** SQLSTATE classes and codes; a full code wins over its class. */
const SQLSTATE: Record<string, DbFailure> = {
  '08': 'unavailable', // connection exception
  '53': 'unavailable', // insufficient resources (too many connections, disk full)
  '57P01': 'unavailable', // admin_shutdown (pg_terminate_backend, restart)
  '57P02': 'unavailable', // crash_shutdown
  '57P03': 'unavailable', // cannot_connect_now (starting up, recovery)
  '57P05': 'unavailable', // idle_session_timeout
  '57014': 'unavailable', // query_canceled (statement_timeout)
  '55P03': 'unavailable', // lock_not_available (lock_timeout)
  '25P03': 'unavailable', // idle_in_transaction_session_timeout
  '58': 'unavailable', // system error (I/O)
  '25006': 'unavailable', // read_only_sql_transaction (a replica, a failover in progress)
  '40001': 'retry', // serialization_failure
  '40P01': 'retry', // deadlock_detected
  '22': 'input', // data exception: 22P05 NUL in text, 22021 bad encoding, 22003 out of range, 22007 bad datetime
  '23': 'input', // integrity constraint: foreign key, check, not null
  '23505': 'conflict', // unique_violation
  AF001: 'fenced', // ours (sql/0020_actor_owners.sql): the actor's epoch is stale
}

/** Socket and client errors of a connection that failed or died (no SQLSTATE). */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ConnectionRefused',
  'ConnectionClosed',
])

const CONNECTION_MESSAGES = [
  'Connection terminated',
  'connection timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Cannot use a pool after calling end on the pool',
  'Client was closed and is not queryable',
  'Query read timeout',
  'Postgres connection has been discarded',
]

export function classifyDbError(error: unknown): DbFailure | undefined {
  for (let e = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (
      e instanceof DatabaseDeadline ||
      e instanceof TransactionAborted ||
      e instanceof CommitOutcomeUnknown
    )
      return 'unavailable'
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') {
      if (/^[0-9A-Z]{5}$/.test(code)) {
        const hit = SQLSTATE[code] ?? SQLSTATE[code.slice(0, 2)]
        if (hit) return hit
      }
      if (CONNECTION_CODES.has(code)) return 'unavailable'
    }
    const message = (e as { message?: unknown }).message
    if (typeof message === 'string' && CONNECTION_MESSAGES.some((m) => message.includes(m)))
      return 'unavailable'
  }
  return undefined
}

/** A database call that outlived its client-side deadline (the connection is dropped). */
export class DatabaseDeadline extends Error {
  constructor(ms: number) {
    super(`database call exceeded its ${ms} ms deadline`)
    this.name = 'DatabaseDeadline'
  }
}

/** A batch's transaction ended by its abort before COMMIT was sent: nothing of it committed. */
export class TransactionAborted extends Error {
  constructor() {
    super('transaction aborted before commit')
    this.name = 'TransactionAborted'
  }
}

/**
 * A COMMIT whose answer was lost and whose outcome could not be settled
 * (the database stayed unreachable): the one case where a 503 may hide a
 * commit. Commands with an Idempotency-Key are safe to retry; it is logged.
 */
export class CommitOutcomeUnknown extends Error {
  constructor(xid: string, cause: unknown) {
    super(`outcome of transaction ${xid} unknown: its commit was not answered`, { cause })
    this.name = 'CommitOutcomeUnknown'
  }
}

/** Seconds a caller should wait before retrying when the database is unavailable. */
export const DB_RETRY_AFTER_SECONDS = 2

/** The 503 a database availability failure becomes; undefined for anything else. */
export function dbUnavailable(error: unknown): Unavailable | undefined {
  if (classifyDbError(error) !== 'unavailable') return undefined
  return new Unavailable(
    'The database is unavailable; retry shortly',
    DB_RETRY_AFTER_SECONDS,
    error,
  )
}

/** True for a failure of the request's own making (SQLSTATE class 22/23, or a 4xx AppError). */
export function isRequestFault(error: unknown): boolean {
  if (error instanceof AppError) return error.status >= 400 && error.status < 500
  const failure = classifyDbError(error)
  return failure === 'input' || failure === 'conflict'
}

/**
 * The AppError a caller gets for a database failure (AppErrors pass
 * through); undefined for our own bugs, which the edge renders as a 500.
 */
export function toDbAppError(error: unknown): AppError | undefined {
  if (error instanceof AppError) return error
  switch (classifyDbError(error)) {
    case 'input':
      // Postgres' message names SQL and values: it is not passed on
      return new ValidationFailed(
        [{ path: '/', message: 'A value of this request cannot be stored' }],
        'The request holds a value that cannot be stored',
      )
    case 'conflict':
      return new Conflict('This conflicts with something that already exists')
    case 'retry':
      return new Unavailable('The database was busy with a conflicting change; retry', 1, error)
    case 'unavailable':
      return dbUnavailable(error)
    case 'fenced':
      return new StaleEpoch(error)
    case undefined:
      return undefined
  }
}

/**
 * The error a command of the user actor fails with. Unclassified failures
 * stay a 503 there, as before this table knew input errors: nothing of the
 * command was committed, so a retry is safe.
 */
export function toCommandError(error: unknown): Error {
  return toDbAppError(error) ?? new Unavailable('Could not complete the command; retry', 1, error)
}
