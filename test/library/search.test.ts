import { afterAll, describe, expect, it } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/config'
import { poseListQuery } from '../../src/library/repository'
import { buildInstance } from '../../src/server'
import { silentLog, useTestEnv } from '../support/env'
import { client } from '../support/http'
import { addProbes, KEYPOINTS, searchCases } from './search-cases'

// PGlite boots in seconds; `bun test` alone gives a test 5 s
const SLOW_MS = 60_000

const env = await useTestEnv()

describe('library search on Postgres', () => {
  it(
    'matches % _ \\ literally, ignores case, needs every tag, and pages every filter without gaps',
    async () => {
      const api = client(await env.instance({ ADMIN_EMAILS: 'admin@example.com' }))
      const admin = await api.register('admin@example.com')
      await addProbes(api, admin.token)
      await searchCases(api)
    },
    SLOW_MS,
  )

  it(
    'runs ?q= on the trigram indexes and ?tag= on the tags GIN index',
    async () => {
      const inst = await env.instance()
      // enough rows that an index beats a scan (the seed alone is read whole)
      await env.sql`insert into poses (id, name, category_id, tags, difficulty, keypoints)
      select gen_random_uuid(), 'Bulk pose ' || i, 'yoga', array['bulk-' || (i % 100)], 'easy', keypoints
      from generate_series(1, 5000) i, (select keypoints from poses limit 1) k`
      await env.sql`analyze poses`
      const plan = async (options: Parameters<typeof poseListQuery>[1]) => {
        const c = poseListQuery(inst.database.db, options).compile()
        const rows = await env.sql.unsafe(`explain ${c.sql}`, c.parameters as never[])
        return rows.map((r: any) => r['QUERY PLAN']).join('\n')
      }
      const byQ = await plan({ limit: 21, q: 'stretch' })
      expect(byQ).toContain('poses_name_trgm')
      expect(byQ).toContain('poses_tags_trgm')
      expect(await plan({ limit: 21, tags: ['bulk-7', 'bulk-8'] })).toContain('poses_tags')
    },
    SLOW_MS,
  )
})

describe('library search on embedded PGlite', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'atelier-search-'))
  let close = async () => {}
  afterAll(async () => {
    await close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it(
    'answers the same cases with the same SQL (PGlite loads its bundled pg_trgm)',
    async () => {
      const inst = await buildInstance(
        loadConfig({ DATA_DIR: dataDir, ADMIN_EMAILS: 'admin@example.com' }),
        silentLog,
      )
      close = inst.close
      expect(inst.database.kind).toBe('pglite')
      const api = client(inst)
      const admin = await api.register('admin@example.com')
      await addProbes(api, admin.token)
      await searchCases(api)

      // no Redis: an admin write clears this instance's pose cache by a call
      const [probe] = (await api.get('/v1/library/poses?q=Quiet%20figure')).json.items
      const path = `/v1/library/poses/${probe.id}`
      expect((await api.get(path)).json.name).toBe('Quiet figure')
      const renamedList = '/v1/library/poses?q=Quiet%20figure%20renamed'
      expect((await api.get(renamedList)).json.items).toEqual([])
      const hits = inst.poseCache.stats().hits
      expect((await api.get(path)).json.name).toBe('Quiet figure')
      expect((await api.get(renamedList)).json.items).toEqual([])
      expect(inst.poseCache.stats().hits).toBe(hits + 2)
      const renamed = await api.call('PUT', path.replace('/v1/', '/v1/admin/'), {
        body: {
          name: 'Quiet figure renamed',
          category: 'standing',
          tags: ['probe'],
          difficulty: 'easy',
          keypoints: KEYPOINTS,
        },
        token: admin.token,
      })
      expect(renamed.status).toBe(200)
      expect((await api.get(path)).json.name).toBe('Quiet figure renamed')
      expect((await api.get(renamedList)).json.items).toHaveLength(1)
    },
    SLOW_MS,
  )
})
