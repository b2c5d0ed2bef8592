import pg from 'pg'

/**
 * What withDeadline (deadline.ts) does from outside a stalled connection:
 * end its backend, or find out what became of the COMMIT it sent. Each call
 * opens a connection of its own, outside the pool (which may be exhausted by
 * the very stall), and closes it when done.
 */
export type Outcome = 'committed' | 'aborted' | 'unknown'

async function control<T>(pool: pg.Pool, work: (c: pg.Client) => Promise<T>): Promise<T> {
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
export function terminate(pool: pg.Pool, pid: number | undefined) {
  if (pid === undefined) return
  // pid and application name: a pid reused within these milliseconds by a stranger is not touched
  void control(pool, (c) =>
    c.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where pid = $1 and application_name = $2',
      [pid, pool.options.application_name ?? ''],
    ),
  ).catch(() => {})
}

/**
 * What became of transaction `xid`, whose COMMIT was sent on backend `pid`
 * and not answered; 'unknown' when the database does not tell within `settleMs`.
 */
export async function settle(
  pool: pg.Pool,
  settleMs: number,
  pid: number | undefined,
  xid: string,
): Promise<Outcome> {
  const until = performance.now() + settleMs
  while (performance.now() < until) {
    try {
      const outcome = await control(pool, async (c) => {
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
