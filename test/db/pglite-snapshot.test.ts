import { afterAll, describe, expect, it } from 'bun:test'
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { makeDatabase } from '../../src/db/database'
import { SQL_DIR, migrate } from '../../src/db/migrator'
import { buildSnapshot, readSnapshot, snapshotFile } from '../../src/db/pglite-snapshot'

// PGlite boots (WASM, initdb) take seconds on a shared CPU
const SLOW_MS = 120_000
const temp: string[] = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'atelier-snapshot-'))
  temp.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of temp) rmSync(dir, { recursive: true, force: true })
})

const options = (dataDir: string, snapshot?: () => Blob | undefined) => ({
  dataDir,
  poolMax: 1,
  statementTimeoutMs: 30_000,
  snapshot,
})

describe('the embedded snapshot', () => {
  it(
    'starts a new DATA_DIR migrated and seeded, with nothing left to apply, and keeps what is written',
    async () => {
      const cache = tempDir()
      await buildSnapshot(cache)
      const dataDir = tempDir()
      const first = await makeDatabase(options(dataDir, () => readSnapshot(cache)))
      expect(first.booted).toBe('snapshot')
      expect(await migrate(first.migrationTarget)).toEqual([])
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from poses`.execute(
        first.db,
      )
      expect(rows[0]!.n).toBeGreaterThan(0)
      await sql`insert into users (id, email, password_hash, role)
        values (${Bun.randomUUIDv7()}, 'kept@example.com', 'x', 'user')`.execute(first.db)
      await first.close()
      const again = await makeDatabase(options(dataDir, () => readSnapshot(cache)))
      expect(again.booted).toBe('existing')
      const kept = await again.db
        .selectFrom('users')
        .select('email')
        .where('email', '=', 'kept@example.com')
        .execute()
      expect(kept).toHaveLength(1)
      await again.close()
    },
    SLOW_MS,
  )

  it(
    'is never used for other migrations, and is replaced when they change',
    async () => {
      const cache = tempDir()
      const older = tempDir()
      const files = readdirSync(SQL_DIR)
        .filter((f) => f.endsWith('.sql'))
        .sort()
      for (const f of files.slice(0, -1)) cpSync(join(SQL_DIR, f), join(older, f))
      const olderFile = await buildSnapshot(cache, older)
      // the current migrations find no snapshot of theirs: a start runs initdb instead
      expect(readSnapshot(cache)).toBeUndefined()
      expect(snapshotFile(cache)).not.toBe(olderFile)
      const dataDir = tempDir()
      const database = await makeDatabase(options(dataDir, () => readSnapshot(cache)))
      expect(database.booted).toBe('initdb')
      await database.close()
      // building the current one removes the older snapshot
      await buildSnapshot(cache)
      expect(readdirSync(cache)).toEqual([snapshotFile(cache).split('/').at(-1)!])
    },
    SLOW_MS,
  )
})
