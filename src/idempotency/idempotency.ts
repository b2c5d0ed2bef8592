import type { Kysely, Transaction } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../db/schema'
import { Conflict, IdempotencyConflict, ValidationFailed } from '../errors'
import * as repo from './repository'
import { pathOf } from '../http/url'

/**
 * Idempotency-Key for mutating POSTs (API.md). Per user and key:
 *   absent ──claim──▶ in_flight ──success──▶ completed (replayed for 24 h)
 *                         └──error──▶ absent (the failed request changed nothing: a retry runs again)
 * The same key with another method, path or body is 409 idempotency_conflict;
 * a second request while the first runs is 409 conflict. An in_flight record
 * whose process died is taken over once its hold (IDEMPOTENCY_HOLD_MS, on the
 * database's clock) expires; the 409 says when in Retry-After.
 *
 * `run` hands the operation a command key derived from the header, so the
 * effect underneath (a ledger entry) is exactly-once even if this record is lost,
 * and the request's hash (with the header), for an effect that must tell another
 * request under the same key from a retry without the record (a pose).
 */
export type Idempotency = ReturnType<typeof makeIdempotency>

export type IdempotentCall = {
  request: Request
  set: { status?: number | string; headers: Record<string, string | number> }
  userId: string
  body: unknown
}

const KEY = /^[\x20-\x7E]{1,255}$/
const KEEP_MS = 24 * 60 * 60 * 1000
const SWEEP_EVERY_MS = 10 * 60 * 1000
const SWEEP_BATCH = 1000

export type IdempotencyDeps = {
  db: Kysely<DB>
  log: Logger
  /** How long an in-flight claim holds before another request may take it over (default 10 000 ms). */
  holdMs?: number
  /** Default true: false outside the primary region (Fly.io), which never writes. */
  sweeps?: boolean
}

export function makeIdempotency(deps: IdempotencyDeps) {
  const { db, log } = deps
  const HOLD_MS = deps.holdMs ?? 10_000
  const sweeper =
    (deps.sweeps ?? true) ? setInterval(() => void sweep(), SWEEP_EVERY_MS) : undefined
  sweeper?.unref?.()

  async function sweep() {
    try {
      let removed: number
      do removed = await repo.sweepExpired(db, SWEEP_BATCH)
      while (removed === SWEEP_BATCH)
    } catch (err) {
      log.warn({ err }, 'idempotency sweep failed')
    }
  }

  async function run<T>(
    call: IdempotentCall,
    operation: (commandKey: string, requestHash?: string) => Promise<T>,
  ): Promise<T> {
    const claim = claimOf(call)
    if (!claim.record) return operation(claim.commandKey)
    const { key, requestHash: hash } = claim.record

    let claimed = await repo.claimKey(db, call.userId, key, hash, HOLD_MS)
    if (!claimed) {
      await repo.deleteExpiredKey(db, call.userId, key)
      claimed = await repo.claimKey(db, call.userId, key, hash, HOLD_MS)
    }
    if (!claimed) {
      const prior = await recorded(db, call.userId, claim.record)
      if (!prior) throw new Conflict('A request with this Idempotency-Key just finished; retry', 1)
      call.set.status = prior.status
      call.set.headers['idempotent-replayed'] = 'true'
      return prior.body as T
    }
    try {
      const result = await operation(claim.commandKey, hash)
      const status = typeof call.set.status === 'number' ? call.set.status : 200
      await repo.completeKey(db, call.userId, key, status, result, KEEP_MS)
      return result
    } catch (error) {
      await repo.releaseKey(db, call.userId, key).catch(() => {})
      throw error
    }
  }

  const runRecorded = recordedRuns(db)

  /** Records first responses in the transaction of their effect, kept 24 h. */
  const record = (trx: Transaction<DB>, records: readonly repo.RecordedResponse[]) =>
    repo.recordCompleted(trx, records, KEEP_MS)

  /** The answer recorded under a key of `userId`, or 409 (see `recorded`); undefined: none. */
  const recordedAnswer = (userId: string, record: NonNullable<Claim['record']>) =>
    recorded(db, userId, record)

  return { run, runRecorded, record, recordedAnswer, sweep, close: () => clearInterval(sweeper) }
}

/**
 * For a POST whose effect records its first response in its own transaction
 * (an accept: src/generation/create-writer.ts), so there is no claim and no
 * completion to commit: the effect's transaction checks the record (replay,
 * conflict) and writes it. A request its own checks refuse before that (a
 * pose of the first request is gone) is answered from the record when there
 * is one, so a replay is never refused. A second request with the same key while
 * the first is in flight on this instance is 409 conflict; one that reaches
 * another instance waits for the first in the user's actor, which answers
 * it from the record.
 */
function recordedRuns(db: Kysely<DB>) {
  /** Keys of recorded requests in flight on this instance: `${userId}\n${key}`. */
  const inFlight = new Set<string>()
  return async function runRecorded(
    call: IdempotentCall,
    operation: (claim: Claim) => Promise<RecordedAnswer>,
  ): Promise<unknown> {
    const claim = claimOf(call)
    const slot = claim.record && `${call.userId}\n${claim.record.key}`
    if (slot !== undefined && inFlight.has(slot)) throw keyInFlight(1)
    if (slot !== undefined) inFlight.add(slot)
    try {
      const answer = await operation(claim).catch(async (error: unknown) => {
        // checks before the effect's transaction may say otherwise now (a pose of the first
        // request is gone): a recorded answer still replays. Otherwise the transaction checks
        // the record itself, so a request that passes them costs no read here
        const { record } = claim
        const replay =
          record && error instanceof ValidationFailed
            ? await recorded(db, call.userId, record)
            : undefined
        if (!replay) throw error
        return replay
      })
      call.set.status = answer.status
      if (answer.replayed) call.set.headers['idempotent-replayed'] = 'true'
      return answer.body
    } finally {
      if (slot !== undefined) inFlight.delete(slot)
    }
  }
}

/**
 * The answer recorded under `record`'s key, when one is: its replay, or 409 for another
 * request's or for one still in flight (another endpoint's claim). Undefined: none, or
 * expired.
 */
async function recorded(
  db: Kysely<DB>,
  userId: string,
  record: NonNullable<Claim['record']>,
): Promise<RecordedAnswer | undefined> {
  const prior = await repo.findKey(db, userId, record.key)
  if (!prior || Number(prior.holds_for_seconds) <= 0) return undefined
  if (prior.request_hash !== record.requestHash) throw new IdempotencyConflict()
  if (prior.state === 'in_flight') throw keyInFlight(Number(prior.holds_for_seconds))
  return { status: prior.response_status ?? 200, body: prior.response_body, replayed: true }
}

/** 409 for a request whose key's first request still runs; it holds `seconds` more at most. */
export const keyInFlight = (seconds: number) =>
  new Conflict('A request with this Idempotency-Key is still in progress', seconds)

/** What a request's Idempotency-Key makes of it: the effect's key, and the record to keep. */
export type Claim = {
  /** The key of the effect underneath (a ledger entry): exactly-once even without the record. */
  commandKey: string
  /** Absent without the header. */
  record?: { key: string; requestHash: string }
}

/** A response, and whether it is the replay of a recorded first one. */
export type RecordedAnswer = { status: number; body: unknown; replayed: boolean }

/** The request's Idempotency-Key (422 when it is not 1–255 printable characters); undefined without one. */
export function idempotencyKeyOf(request: Request): string | undefined {
  const key = request.headers.get('idempotency-key')
  if (key === null) return undefined
  if (!KEY.test(key))
    throw new ValidationFailed([
      {
        path: '/headers/idempotency-key',
        message: 'Expected 1 to 255 printable ASCII characters',
      },
    ])
  return key
}

function claimOf(call: IdempotentCall): Claim {
  const key = idempotencyKeyOf(call.request)
  if (key === undefined) return { commandKey: `auto:${Bun.randomUUIDv7()}` }
  const requestHash = new Bun.CryptoHasher('sha256')
    .update(`${call.request.method} ${pathOf(call.request.url)}\n${stableStringify(call.body)}`)
    .digest('hex')
  return { commandKey: `idem:${key}`, record: { key, requestHash } }
}

/** JSON with sorted keys, so `{a,b}` and `{b,a}` are the same request. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`)
      .join(',')}}`
  return JSON.stringify(value) ?? 'null'
}
