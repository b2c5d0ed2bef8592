import { PGlite } from '@electric-sql/pglite'
import { afterAll, describe, expect, it } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql, type Kysely } from 'kysely'
import { PGLITE_EXTENSIONS } from '../../src/db/database'
import { jsonb } from '../../src/db/json'
import type { DB } from '../../src/db/schema'
import { SQL_DIR, readMigrations } from '../../src/db/migrator'
import { buildSeed } from '../../scripts/pose-seed/build'
import { TARGET, renderFixes } from '../../scripts/pose-seed/write-sql'
import { useTestEnv } from '../support/env'

// PGlite boots in seconds; `bun test` alone gives a test 5 s
const SLOW_MS = 30_000

const env = await useTestEnv()
const inst = await env.instance()
const db = inst.database.db as Kysely<DB>

const catalog = buildSeed()
  .poses.map(({ slug: _, ...p }) => p)
  .sort((a, b) => a.id.localeCompare(b.id))

const SELECT_POSES = `select id::text as id, name, category_id as category, tags, difficulty, keypoints
  from poses order by id`

const good = Array.from({ length: 17 }, () => [0.5, 0.5, 2])
const malformed: Record<string, unknown> = {
  '16 points': good.slice(1),
  'x out of range': good.map((k, i) => (i === 3 ? [1.2, 0.5, 2] : k)),
  'visibility 3': good.map((k, i) => (i === 3 ? [0.5, 0.5, 3] : k)),
  'a string coordinate': good.map((k, i) => (i === 3 ? ['0.5', 0.5, 2] : k)),
  'a pair': good.map((k, i) => (i === 3 ? [0.5, 0.5] : k)),
  'an object': { nose: [0.5, 0.5, 2] },
}

describe('seed library on Postgres', () => {
  it('installs exactly the catalog of scripts/pose-seed', async () => {
    const { rows } = await sql.raw<(typeof catalog)[number]>(SELECT_POSES).execute(db)
    expect(rows).toEqual(catalog)
  })

  it('refuses malformed keypoints in SQL, whatever the caller checked', async () => {
    const insert = (keypoints: unknown) =>
      db
        .insertInto('poses')
        .values({
          id: crypto.randomUUID(),
          name: `probe ${crypto.randomUUID()}`,
          category_id: 'standing',
          difficulty: 'easy',
          keypoints: jsonb(keypoints as never),
        })
        .execute()
    for (const [what, keypoints] of Object.entries(malformed))
      await expect(insert(keypoints), what).rejects.toThrow(/poses_keypoints/)
    await insert(good)
  })
})

describe('seed library in embedded mode (PGlite)', () => {
  const pg = PGlite.create({ extensions: PGLITE_EXTENSIONS })
  afterAll(async () => (await pg).close())

  it(
    'applies every migration and installs the same catalog',
    async () => {
      const lite = await pg
      for (const m of readMigrations()) await lite.exec(m.text)
      const { rows } = await lite.query(SELECT_POSES)
      expect(rows).toEqual(catalog)
    },
    SLOW_MS,
  )

  it(
    'refuses the same malformed keypoints',
    async () => {
      const lite = await pg
      for (const [what, keypoints] of Object.entries(malformed)) {
        const insert = lite.query(
          `insert into poses (id, name, category_id, difficulty, keypoints)
           values ($1, $2, 'standing', 'easy', $3::text::jsonb)`,
          [crypto.randomUUID(), `probe ${what}`, JSON.stringify(keypoints)],
        )
        await expect(insert, what).rejects.toThrow(/poses_keypoints/)
      }
    },
    SLOW_MS,
  )

  it(
    `keeps sql/${TARGET} in step with the catalog (bun scripts/pose-seed/write-sql.ts)`,
    async () => {
      expect(readFileSync(join(SQL_DIR, TARGET), 'utf8')).toBe(await renderFixes())
    },
    SLOW_MS,
  )
})
