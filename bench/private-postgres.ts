/**
 * bun bench/private-postgres.ts — a throwaway Postgres cluster for profiling, with
 * pg_stat_statements preloaded (the shared server's shared_preload_libraries cannot change
 * without a restart, and the shared services are never restarted). Prints its URL; stops
 * and removes the cluster on SIGINT/SIGTERM. Needs initdb/pg_ctl (PG_BIN, default the
 * newest /usr/lib/postgresql/<v>/bin) and, as root, runs them as the `postgres` user.
 *
 *   BENCH_DATABASE_URL=$(…the printed URL…) BENCH_PG_STATEMENTS=1 bun run bench:accept
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))
const bin = process.env.PG_BIN ?? `/usr/lib/postgresql/${versions[0]}/bin`
const port = Number(process.env.PG_PORT ?? 55432)
const dir = mkdtempSync(join(tmpdir(), 'atelier-pg-profile-'))
chmodSync(dir, 0o777)
const data = join(dir, 'data')
/** One shell command line, as the postgres user when this is root (initdb refuses root). */
function run(command: string) {
  const argv =
    process.getuid?.() === 0
      ? ['su', 'postgres', '-s', '/bin/sh', '-c', command]
      : ['sh', '-c', command]
  const r = Bun.spawnSync(argv, { stdout: 'inherit', stderr: 'inherit' })
  if (r.exitCode !== 0) throw new Error(`${command.split(' ')[0]} exited with ${r.exitCode}`)
}

run(`${bin}/initdb -D ${data} -U postgres --auth=trust -E UTF8 >/dev/null`)
// the shared server's settings that matter for the figures, plus the statement statistics
const options = [
  `-p ${port}`,
  '-k /tmp',
  '-c listen_addresses=127.0.0.1',
  '-c shared_preload_libraries=pg_stat_statements',
  '-c pg_stat_statements.track=all',
  '-c max_connections=200',
  '-c shared_buffers=128MB',
]
run(`${bin}/pg_ctl -D ${data} -l ${join(dir, 'log')} -w -o "${options.join(' ')}" start`)
const stop = () => {
  run(`${bin}/pg_ctl -D ${data} -m fast -w stop`)
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
console.log(`postgres://postgres@127.0.0.1:${port}/postgres`)
// stay alive until signalled
setInterval(() => {}, 1 << 30)
