import type { PostgresPool } from 'kysely'
import type pg from 'pg'
import { abortReason, batchSignal } from './batch-scope'
import { wrapConnection, type Wrapped } from './deadline-connection'

/**
 * Presents a pg.Pool to kysely's PostgresDialect with a client-side deadline
 * on every query. statement_timeout bounds what the server does; this bounds
 * what the server cannot: a connection that went silent (a partition, a
 * frozen proxy, a backend that never answers). A query past its deadline
 * fails with DatabaseDeadline and its connection is destroyed, so nothing
 * queued behind it on that connection waits forever and the pool never gets
 * it back. Waiting for a connection is bounded by the pool's own
 * connectionTimeoutMillis.
 *
 * A connection checked out inside a batch scope (src/db/batch-scope.ts) also
 * follows the batch's AbortSignal. Its transaction is, at any moment, in one
 * of two states, and an abort (or a lost answer) ends each in a known way:
 *
 *   open ──COMMIT sent──▶ committing ──answer──▶ committed | rolled back
 *   open: the abort destroys the connection before COMMIT can be written, so
 *     Postgres can only roll it back (its backend is also terminated, to free
 *     its locks now rather than at lock_timeout); the call fails with the
 *     abort's reason.
 *   committing: the answer is no longer awaited; the transaction's xid, read
 *     with its BEGIN (one round trip), is settled from another connection
 *     (pg_xact_status, terminating the backend while it is still in progress),
 *     and the COMMIT answers what happened: success if it committed. Only when
 *     the database stays unreachable for `settleMs` does it fail with
 *     CommitOutcomeUnknown.
 *
 * Each connection's part is deadline-connection.ts; what is done from
 * another connection (terminate, settle) is deadline-control.ts.
 */
export type Deadlines = {
  /** Client-side deadline of one call. */
  callDeadlineMs: number
  /** Longest time spent settling a COMMIT whose answer was lost (default 10 000 ms). */
  settleMs?: number
}

export function withDeadline(pool: pg.Pool, deadlines: Deadlines): PostgresPool {
  const settleMs = deadlines.settleMs ?? 10_000
  const wrapped = new WeakMap<pg.PoolClient, Wrapped>()
  const wrap = (client: pg.PoolClient) =>
    wrapConnection(client, {
      pool,
      callDeadlineMs: deadlines.callDeadlineMs,
      settleMs,
      forget: () => wrapped.delete(client),
    })

  return {
    async connect() {
      const signal = batchSignal()
      if (signal?.aborted) throw abortReason(signal)
      const client = await pool.connect()
      if (signal?.aborted) {
        client.release()
        throw abortReason(signal)
      }
      let w = wrapped.get(client)
      if (!w) {
        w = wrap(client)
        wrapped.set(client, w)
      }
      w.checkout(signal)
      return w.client
    },
    end: () => pool.end(),
    get options() {
      return pool.options
    },
    get Client() {
      return (pool as unknown as { Client?: unknown }).Client
    },
  } as unknown as PostgresPool
}
