import postgres from 'postgres'
import { makeDatabase, type Database } from '../src/db/database'
import { migrate } from '../src/db/migrator'

/** A fresh migrated database for one benchmark run, dropped by `drop()`. */
export async function benchDatabase(
  poolMax: number,
): Promise<{ database: Database; url: string; drop: () => Promise<void> }> {
  const adminUrl =
    process.env.BENCH_DATABASE_URL ??
    process.env.TEST_DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres'
  const name = `atelier_bench_${crypto.randomUUID().slice(0, 8)}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database "${name}"`)
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  const url = u.toString()
  // 256 closed-loop clients share `poolMax` connections by design: waiting for one is part of
  // what is measured, not a failure (the 3 s default connect timeout fails the run on a busy machine)
  const database = await makeDatabase({
    url,
    dataDir: '',
    poolMax,
    statementTimeoutMs: 60_000,
    connectTimeoutMs: 60_000,
  })
  await migrate(database.migrationTarget)
  return {
    database,
    url,
    drop: async () => {
      await database.close()
      await admin.unsafe(`drop database if exists "${name}" with (force)`)
      await admin.end()
    },
  }
}

export type Sample = { ops: number; seconds: number; latencies: number[]; rejected: number }

/**
 * Runs `clients` closed loops of `op` until `total` operations were started.
 * An op may return false (a legitimate rejection, e.g. insufficient credits);
 * an op that throws aborts the benchmark: an error is never counted as speed.
 */
export async function closedLoop(
  clients: number,
  total: number,
  op: (i: number) => Promise<unknown>,
): Promise<Sample> {
  let next = 0
  let rejected = 0
  const latencies: number[] = []
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        const i = next++
        const s = performance.now()
        if ((await op(i)) === false) rejected++
        latencies.push(performance.now() - s)
      }
    }),
  )
  return { ops: total, seconds: (performance.now() - t0) / 1000, latencies, rejected }
}

export function summarize(s: Sample) {
  const sorted = [...s.latencies].sort((a, b) => a - b)
  const pct = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
  return { opsPerSec: s.ops / s.seconds, p50: pct(50), p99: pct(99), rejected: s.rejected }
}

export function table(rows: Record<string, string | number>[]) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))]
  const fmt = (v: string | number) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v
  const lines = [`| ${cols.join(' | ')} |`, `| ${cols.map(() => '---').join(' | ')} |`]
  for (const r of rows) lines.push(`| ${cols.map((c) => fmt(r[c] ?? '')).join(' | ')} |`)
  return lines.join('\n')
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * pg_stat_statements from here on (BENCH_PG_STATEMENTS=1): the extension must be preloaded
 * in the server `sql` reaches (`bun bench/private-postgres.ts` starts one that has it).
 */
export async function resetStatements(sql: postgres.Sql) {
  await sql`create extension if not exists pg_stat_statements`
  await sql`select pg_stat_statements_reset()`
}

/**
 * The top statements since the reset by execution time: calls, mean and total ms, rows per
 * call, share. With `pg_stat_statements.track=all` a function's own statements are listed
 * too, and also counted in the call that ran them.
 */
export async function statements(sql: postgres.Sql) {
  const rows = await sql`
    select query, calls, mean_exec_time, total_exec_time, rows
    from pg_stat_statements
    where dbid = (select oid from pg_database where datname = current_database())
    order by total_exec_time desc limit 12`
  const all = rows.reduce((a, r) => a + Number(r.total_exec_time), 0)
  return table(
    rows.map((r) => ({
      statement: String(r.query).replace(/\s+/g, ' ').slice(0, 90),
      calls: Number(r.calls),
      'mean ms': Number(Number(r.mean_exec_time).toFixed(3)),
      'total ms': Math.round(Number(r.total_exec_time)),
      'rows/call': Number((Number(r.rows) / Number(r.calls)).toFixed(1)),
      'share of time': `${((Number(r.total_exec_time) / all) * 100).toFixed(1)}%`,
    })),
  )
}
