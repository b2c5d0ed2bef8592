import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { makeMemoryPGlite } from './database'
import { SQL_DIR, migrate, readMigrations } from './migrator'

/**
 * Embedded mode's first start, made short: a new DATA_DIR starts from a
 * migrated PGlite data directory (a tar), unpacked in about half the time
 * initdb takes, with no migration left to run. The snapshot is built once,
 * by `bun install` (the postinstall script) or `bun run db:snapshot`, in an
 * in-memory PGlite with the same migrations; its name carries a hash of the
 * PGlite version and every migration, so a snapshot of other migrations is
 * never used (the start then runs initdb and the migrations, as before).
 */
const ROOT = join(import.meta.dir, '..', '..')
export const SNAPSHOT_DIR = join(ROOT, 'node_modules', '.cache', 'atelier')

function pgliteVersion() {
  try {
    const file = join(ROOT, 'node_modules', '@electric-sql', 'pglite', 'package.json')
    return String(JSON.parse(readFileSync(file, 'utf8')).version)
  } catch {
    return 'unknown'
  }
}

/** The snapshot's file for this PGlite and these migrations. */
export function snapshotFile(cacheDir = SNAPSHOT_DIR, sqlDir = SQL_DIR) {
  const hash = new Bun.CryptoHasher('sha256').update(`pglite ${pgliteVersion()}\n`)
  for (const m of readMigrations(sqlDir)) hash.update(`${m.name} ${m.checksum}\n`)
  return join(cacheDir, `pglite-${hash.digest('hex').slice(0, 16)}.tar`)
}

/** The snapshot of this PGlite and these migrations, when one was built. */
export function readSnapshot(cacheDir = SNAPSHOT_DIR, sqlDir = SQL_DIR): Blob | undefined {
  const file = snapshotFile(cacheDir, sqlDir)
  return existsSync(file) ? Bun.file(file) : undefined
}

/** Builds the snapshot unless it exists; removes snapshots of other migrations. Returns its file. */
export async function buildSnapshot(cacheDir = SNAPSHOT_DIR, sqlDir = SQL_DIR): Promise<string> {
  const file = snapshotFile(cacheDir, sqlDir)
  if (existsSync(file)) return file
  const memory = await makeMemoryPGlite()
  try {
    await migrate(memory.migrationTarget, sqlDir)
    const tar = await memory.dump()
    mkdirSync(cacheDir, { recursive: true })
    for (const old of readdirSync(cacheDir))
      if (/^pglite-[0-9a-f]{16}\.tar$/.test(old)) rmSync(join(cacheDir, old))
    // written whole, then renamed: a start never reads half a snapshot
    const partial = `${file}.${process.pid}.partial`
    await Bun.write(partial, tar)
    renameSync(partial, file)
  } finally {
    await memory.close()
  }
  return file
}
