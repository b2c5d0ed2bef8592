import type { PGlite, Transaction as PGliteTransaction } from '@electric-sql/pglite'
import type { PostgresPool, PostgresPoolClient } from 'kysely'

/**
 * Presents one PGlite instance as the pool kysely's PostgresDialect expects.
 * PGlite is a single session, so a client is exclusive: connect() waits until
 * the previous client is released. Without that, two kysely transactions
 * would interleave their statements inside one Postgres session.
 */
export function makePGlitePool(pg: PGlite): PostgresPool {
  let tail: Promise<void> = Promise.resolve()
  const connect = async (): Promise<PostgresPoolClient> => {
    let release!: () => void
    const previous = tail
    tail = new Promise<void>((resolve) => (release = resolve))
    await previous
    return {
      async query(sql: string, parameters: ReadonlyArray<unknown>) {
        const result = await pg.query<Record<string, unknown>>(sql, parameters as unknown[], {
          rowMode: 'object',
        })
        return {
          command: commandOf(sql),
          rowCount: result.affectedRows ?? result.rows.length,
          rows: result.rows,
        }
      },
      release: () => release(),
    } as unknown as PostgresPoolClient
  }
  return { connect, end: async () => {}, options: {} }
}

function commandOf(sql: string) {
  const word = sql.trimStart().slice(0, 6).toUpperCase()
  return (['INSERT', 'UPDATE', 'DELETE', 'SELECT'].includes(word) ? word : 'SELECT') as 'SELECT'
}

export type { PGliteTransaction }
