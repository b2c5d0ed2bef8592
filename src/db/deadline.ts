import type { PostgresPool, PostgresPoolClient } from 'kysely'
import pg from 'pg'
import { abortReason, batchSignal } from './batch-scope'
import { CommitOutcomeUnknown, DatabaseDeadline } from './errors'

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
 */
export type DeadlineOptions = {
  /** Client-side deadline of one call. */
  callDeadlineMs: number
  /** Longest time spent settling a COMMIT whose answer was lost (default 10 000 ms). */
  settleMs?: number
}

type Client = PostgresPoolClient & { processID?: number }
type Outcome = 'committed' | 'aborted' | 'unknown'

const TRANSACTION_START = /^\s*(begin|start\s+transaction)\b/i
const TRANSACTION_END = /^\s*(commit|rollback|end|abort)\s*;?\s*$/i
const COMMIT = /^\s*(commit|end)\s*;?\s*$/i

export function withDeadline(pool: pg.Pool, options: DeadlineOptions): PostgresPool {
  const { callDeadlineMs } = options
  const settleMs = options.settleMs ?? 10_000
  const wrapped = new WeakMap<pg.PoolClient, Wrapped>()

  /** A connection of its own, outside the pool (which may be exhausted by the very stall). */
  async function control<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({
      ...pool.options,
      // not enumerable on pg.Pool's options, so not copied by the spread
      password: pool.options.password,
      connectionTimeoutMillis: 1000,
      query_timeout: 2000,
    })
    c.on('error', () => {})
    try {
      await c.connect()
      return await work(c)
    } finally {
      void c.end().catch(() => {})
    }
  }

  /** Ends a backend whose client is gone, so its row locks go now, not at lock_timeout. */
  function terminate(pid: number | undefined) {
    if (pid === undefined) return
    // pid and application name: a pid reused within these milliseconds by a stranger is not touched
    void control((c) =>
      c.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where pid = $1 and application_name = $2',
        [pid, pool.options.application_name ?? ''],
      ),
    ).catch(() => {})
  }

  /** What became of transaction `xid`, whose COMMIT was sent on backend `pid` and not answered. */
  async function settle(pid: number | undefined, xid: string): Promise<Outcome> {
    const until = performance.now() + settleMs
    while (performance.now() < until) {
      try {
        const outcome = await control(async (c) => {
          while (performance.now() < until) {
            const { rows } = await c.query('select pg_xact_status($1::xid8) as status', [xid])
            const status = rows[0]?.status as string | null
            if (status === 'committed' || status === 'aborted') return status
            if (status !== 'in progress' || pid === undefined) return 'unknown'
            // in progress: only its own backend runs it, so the pid is still ours to end
            await c.query('select pg_terminate_backend($1::int, 1000)', [pid])
          }
          return undefined
        })
        if (outcome) return outcome
      } catch {
        // the database does not answer yet: try again within the budget
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    return 'unknown'
  }

  type Wrapped = { client: Client; checkout(signal: AbortSignal | undefined): void }

  function wrap(client: pg.PoolClient): Wrapped {
    let brokenBy: Error | undefined
    let signal: AbortSignal | undefined
    /** The open transaction's xid, when it runs in a batch scope (read with its BEGIN). */
    let xid: string | undefined
    let committing = false
    const pid = () => (client as unknown as { processID?: number }).processID

    const kill = (reason: Error) => {
      if (brokenBy) return
      brokenBy = reason
      // internal but stable since pg 7: the socket under the protocol connection
      const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } })
        .connection?.stream
      stream?.destroy()
    }
    const onAbort = () => {
      kill(abortReason(signal!))
      if (!committing) terminate(pid())
    }

    /** One query under the call deadline and the batch's signal; either drops the connection. */
    function send(text: string, parameters: unknown[]): Promise<pg.QueryResult> {
      if (brokenBy) return Promise.reject(brokenBy)
      const s = signal
      if (s?.aborted) {
        onAbort()
        return Promise.reject(abortReason(s))
      }
      const running = client.query(text, parameters)
      // the query's own rejection after a kill is expected; it must not go unhandled
      running.catch(() => {})
      return new Promise((resolve, reject) => {
        const fail = (reason: Error) => {
          kill(reason)
          reject(reason)
        }
        const timer = setTimeout(() => fail(new DatabaseDeadline(callDeadlineMs)), callDeadlineMs)
        const aborted = () => fail(abortReason(s!))
        s?.addEventListener('abort', aborted, { once: true })
        running.then(resolve, reject).finally(() => {
          clearTimeout(timer)
          s?.removeEventListener('abort', aborted)
        })
      })
    }

    /** BEGIN and the new transaction's xid in one round trip (a simple-protocol pair). */
    async function begin(text: string) {
      const results = (await send(
        `${text}; select pg_current_xact_id()::text as xid`,
        [],
      )) as unknown as pg.QueryResult[]
      xid = String(results[1]!.rows[0]!.xid)
      return results[0]!
    }

    async function commit(text: string, parameters: unknown[]) {
      // the xid, known before COMMIT is sent, is how its outcome is settled if the answer is lost
      const known = xid!
      committing = true
      try {
        return await send(text, parameters)
      } catch (error) {
        if (refusedByServer(error)) throw error
        kill(error as Error)
        const outcome = await settle(pid(), known)
        if (outcome === 'committed') return { command: 'COMMIT', rowCount: null, rows: [] }
        if (outcome === 'aborted') throw error
        throw new CommitOutcomeUnknown(known, error)
      } finally {
        committing = false
      }
    }

    const out = {
      get processID() {
        return pid()
      },
      async query(text: string, parameters: ReadonlyArray<unknown>) {
        const params = parameters as unknown[]
        if (xid !== undefined && COMMIT.test(text)) {
          const committed = commit(text, params)
          xid = undefined
          return committed
        }
        if (signal && params.length === 0 && TRANSACTION_START.test(text)) return begin(text)
        if (TRANSACTION_END.test(text)) xid = undefined
        return send(text, params)
      },
      release(destroy?: boolean) {
        signal?.removeEventListener('abort', onAbort)
        signal = undefined
        xid = undefined
        const drop = destroy || brokenBy !== undefined
        client.release(drop ? true : undefined)
        if (drop) wrapped.delete(client)
      },
    } as unknown as Client

    return {
      client: out,
      checkout(s) {
        signal = s
        s?.addEventListener('abort', onAbort, { once: true })
      },
    }
  }

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

/** An ERROR the server sent in answer (a deferred constraint, say): the transaction rolled back. */
function refusedByServer(error: unknown) {
  return error instanceof pg.DatabaseError && error.severity === 'ERROR'
}
