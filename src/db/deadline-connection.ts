import type { PostgresPoolClient } from 'kysely'
import pg from 'pg'
import { abortReason } from './batch-scope'
import { settle, terminate } from './deadline-control'
import { CommitOutcomeUnknown, DatabaseDeadline } from './errors'

/**
 * One pooled connection under withDeadline (deadline.ts): each query under
 * the call deadline and, while it is checked out in a batch scope, under the
 * batch's signal. Its transaction in a batch scope:
 *
 *   open ──COMMIT sent──▶ committing ──answer──▶ committed | rolled back
 *   open ──abort──▶ broken: socket destroyed, backend terminated (rolled back)
 *   committing ──abort or lost answer──▶ broken, its outcome settled from
 *     another connection by its xid (deadline-control.ts)
 *
 * A broken connection fails every later query with what broke it, and is
 * destroyed, never returned to the pool, when released.
 */
export type Client = PostgresPoolClient & { processID?: number }

export type Wrapped = { client: Client; checkout(signal: AbortSignal | undefined): void }

export type ConnectionDeps = {
  pool: pg.Pool
  callDeadlineMs: number
  settleMs: number
  /** The wrapper forgets this connection: it was destroyed. */
  forget: () => void
}

type Conn = {
  deps: ConnectionDeps
  client: pg.PoolClient
  brokenBy?: Error
  signal?: AbortSignal
  /** The open transaction's xid, when it runs in a batch scope (read with its BEGIN). */
  xid?: string
  committing: boolean
  onAbort: () => void
}

const TRANSACTION_START = /^\s*(begin|start\s+transaction)\b/i
const TRANSACTION_END = /^\s*(commit|rollback|end|abort)\s*;?\s*$/i
const COMMIT = /^\s*(commit|end)\s*;?\s*$/i

export function wrapConnection(client: pg.PoolClient, deps: ConnectionDeps): Wrapped {
  const c: Conn = { deps, client, committing: false, onAbort: () => {} }
  c.onAbort = () => {
    kill(c, abortReason(c.signal!))
    if (!c.committing) terminate(deps.pool, pid(c))
  }
  const out = {
    get processID() {
      return pid(c)
    },
    query: (text: string, parameters: ReadonlyArray<unknown>) =>
      query(c, text, parameters as unknown[]),
    release: (destroy?: boolean) => release(c, destroy),
  } as unknown as Client
  return {
    client: out,
    checkout(s) {
      c.signal = s
      s?.addEventListener('abort', c.onAbort, { once: true })
    },
  }
}

const pid = (c: Conn) => (c.client as unknown as { processID?: number }).processID

async function query(c: Conn, text: string, params: unknown[]) {
  if (c.xid !== undefined && COMMIT.test(text)) {
    const committed = commit(c, c.xid, text, params)
    c.xid = undefined
    return committed
  }
  if (c.signal && params.length === 0 && TRANSACTION_START.test(text)) return begin(c, text)
  if (TRANSACTION_END.test(text)) c.xid = undefined
  return send(c, text, params)
}

function release(c: Conn, destroy?: boolean) {
  c.signal?.removeEventListener('abort', c.onAbort)
  c.signal = undefined
  c.xid = undefined
  const drop = destroy || c.brokenBy !== undefined
  c.client.release(drop ? true : undefined)
  if (drop) c.deps.forget()
}

function kill(c: Conn, reason: Error) {
  if (c.brokenBy) return
  c.brokenBy = reason
  // internal but stable since pg 7: the socket under the protocol connection
  const stream = (c.client as unknown as { connection?: { stream?: { destroy(): void } } })
    .connection?.stream
  stream?.destroy()
}

/** One query under the call deadline and the batch's signal; either drops the connection. */
function send(c: Conn, text: string, parameters: unknown[]): Promise<pg.QueryResult> {
  if (c.brokenBy) return Promise.reject(c.brokenBy)
  const s = c.signal
  if (s?.aborted) {
    c.onAbort()
    return Promise.reject(abortReason(s))
  }
  const { callDeadlineMs } = c.deps
  const running = c.client.query(text, parameters)
  // the query's own rejection after a kill is expected; it must not go unhandled
  running.catch(() => {})
  return new Promise((resolve, reject) => {
    const fail = (reason: Error) => {
      kill(c, reason)
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
async function begin(c: Conn, text: string) {
  const results = (await send(
    c,
    `${text}; select pg_current_xact_id()::text as xid`,
    [],
  )) as unknown as pg.QueryResult[]
  c.xid = String(results[1]!.rows[0]!.xid)
  return results[0]!
}

/** `xid`, known before COMMIT is sent, is how its outcome is settled if the answer is lost. */
async function commit(c: Conn, xid: string, text: string, parameters: unknown[]) {
  c.committing = true
  try {
    return await send(c, text, parameters)
  } catch (error) {
    if (refusedByServer(error)) throw error
    kill(c, error as Error)
    const outcome = await settle(c.deps.pool, c.deps.settleMs, pid(c), xid)
    if (outcome === 'committed') return { command: 'COMMIT', rowCount: null, rows: [] }
    if (outcome === 'aborted') throw error
    throw new CommitOutcomeUnknown(xid, error)
  } finally {
    c.committing = false
  }
}

/** An ERROR the server sent in answer (a deferred constraint, say): the transaction rolled back. */
function refusedByServer(error: unknown) {
  return error instanceof pg.DatabaseError && error.severity === 'ERROR'
}
