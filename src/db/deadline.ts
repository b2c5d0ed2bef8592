import type { PostgresPool, PostgresPoolClient } from 'kysely'
import type pg from 'pg'
import { DatabaseDeadline } from './errors'

/**
 * Presents a pg.Pool to kysely's PostgresDialect with a client-side deadline
 * on every query. statement_timeout bounds what the server does; this bounds
 * what the server cannot: a connection that went silent (a partition, a
 * frozen proxy, a backend that never answers). A query past its deadline
 * fails with DatabaseDeadline and its connection is destroyed, so nothing
 * queued behind it on that connection waits forever and the pool never gets
 * it back. Waiting for a connection is bounded by the pool's own
 * connectionTimeoutMillis.
 */
type Client = PostgresPoolClient & { processID?: number }

export function withDeadline(pool: pg.Pool, deadlineMs: number): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, Client>()

  function wrap(client: pg.PoolClient): Client {
    let broken = false
    const kill = () => {
      broken = true
      // internal but stable since pg 7: the socket under the protocol connection
      const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } })
        .connection?.stream
      stream?.destroy()
    }
    return {
      get processID() {
        return (client as unknown as { processID?: number }).processID
      },
      query(sql: string, parameters: ReadonlyArray<unknown>) {
        const running = client.query(sql, parameters as unknown[])
        let timer: ReturnType<typeof setTimeout> | undefined
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            kill()
            reject(new DatabaseDeadline(deadlineMs))
          }, deadlineMs)
        })
        // the query's own rejection after a kill is expected; it must not go unhandled
        running.catch(() => {})
        return Promise.race([running, deadline]).finally(() => clearTimeout(timer))
      },
      release(destroy?: boolean) {
        client.release(destroy || broken ? true : undefined)
        if (destroy || broken) wrapped.delete(client)
      },
    } as unknown as Client
  }

  return {
    async connect() {
      const client = await pool.connect()
      let out = wrapped.get(client)
      if (!out) {
        out = wrap(client)
        wrapped.set(client, out)
      }
      return out
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
