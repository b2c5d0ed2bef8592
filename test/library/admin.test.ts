import { describe, expect, it, setDefaultTimeout } from 'bun:test'
import { makePoseCache } from '../../src/library/cache'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { KEYPOINTS } from './search-cases'

setDefaultTimeout(30_000)

const env = await useTestEnv()
const settings = {
  ADMIN_EMAILS: 'admin@example.com',
  RENDER_CONCURRENCY: '0', // queued work stays queued
}
const one = await env.instance(settings)
const two = await env.instance(settings)
const api = client(one)
const apiTwo = client(two)
const admin = await api.register('admin@example.com')
const user = await api.register()

let n = 0
const pose = (overrides: Record<string, unknown> = {}) => ({
  name: `Admin probe ${++n}`,
  category: 'standing',
  tags: ['probe', 'admin-test'],
  difficulty: 'medium',
  keypoints: KEYPOINTS,
  ...overrides,
})
const create = (body: unknown, token = admin.token, headers: Record<string, string> = {}) =>
  api.post('/v1/admin/library/poses', body, token, headers)
const put = (id: string, body: unknown, token = admin.token) =>
  api.call('PUT', `/v1/admin/library/poses/${id}`, { body, token })
const remove = (id: string, token = admin.token) =>
  api.call('DELETE', `/v1/admin/library/poses/${id}`, { token })

/**
 * Resolves once `inst` has heard of every change `writer` published so far
 * (pub/sub delivers one publisher's messages in order); fails after `ms`.
 */
function caughtUp(inst: Instance, writer: Instance, ms = 5000) {
  const target = writer.libraryInvalidation.counts().published
  const done = () => inst.libraryInvalidation.counts().received >= target
  return new Promise<void>((resolve, reject) => {
    if (done()) return resolve()
    const timer = setTimeout(() => {
      off()
      reject(new Error(`${inst.config.instanceId} did not hear of ${target} changes in ${ms} ms`))
    }, ms)
    const off = inst.poseCache.onClear(() => {
      if (!done()) return
      clearTimeout(timer)
      off()
      resolve()
    })
  })
}

describe('admin pose management', () => {
  it('is for admins only', async () => {
    expect((await create(pose(), '')).status).toBe(401)
    expect((await create(pose(), user.token)).status).toBe(403)
    const [first] = (await api.get('/v1/library/poses?limit=1')).json.items
    expect((await put(first.id, pose(), user.token)).status).toBe(403)
    expect((await remove(first.id, user.token)).status).toBe(403)
  })

  it('creates, reads back, replaces and lists a pose', async () => {
    const body = pose()
    const created = await create(body)
    expect(created.status).toBe(201)
    expect(created.json).toEqual({ id: expect.any(String), thumbnailUrl: null, ...body })
    const got = await api.get(`/v1/library/poses/${created.json.id}`)
    expect(got.json).toEqual(created.json)

    const replacement = pose({ category: 'sitting', tags: ['seated'], difficulty: 'hard' })
    const replaced = await put(created.json.id, replacement)
    expect(replaced.status).toBe(200)
    expect(replaced.json).toEqual({ id: created.json.id, thumbnailUrl: null, ...replacement })
    const listed = await api.get(
      `/v1/library/poses?category=sitting&q=${encodeURIComponent(replacement.name)}`,
    )
    expect(listed.json.items).toEqual([replaced.json])
    expect((await put(crypto.randomUUID(), pose())).status).toBe(404)
  })

  it('validates keypoints as the seed does, and the category, with 422 and the path', async () => {
    const cases: [unknown, string][] = [
      [pose({ keypoints: KEYPOINTS.slice(1) }), '/keypoints'],
      [pose({ keypoints: KEYPOINTS.map((k, i) => (i === 4 ? [1.5, 0.5, 2] : k)) }), '/keypoints/4'],
      [pose({ keypoints: KEYPOINTS.map((k, i) => (i === 2 ? [0.5, 0.5, 3] : k)) }), '/keypoints/2'],
      [
        pose({ keypoints: KEYPOINTS.map((k, i) => (i === 2 ? ['0.5', 0.5, 2] : k)) }),
        '/keypoints/2',
      ],
      [pose({ category: 'no-such-category' }), '/category'],
      [pose({ name: '' }), '/name'],
      [pose({ name: ' padded ' }), '/name'],
      [pose({ name: 'line\nbreak' }), '/name'],
      [pose({ name: 'x'.repeat(101) }), '/name'],
      [pose({ tags: ['Not A Tag'] }), '/tags/0'],
      [pose({ tags: ['dup', 'dup'] }), '/tags'],
      [pose({ difficulty: 'extreme' }), '/difficulty'],
    ]
    const [before] = await env.sql`select count(*)::int as n from poses`
    for (const [body, path] of cases) {
      const res = await create(body)
      expect({ path, status: res.status }).toEqual({ path, status: 422 })
      expect(res.json.error.details.some((d: any) => d.path.startsWith(path))).toBe(true)
    }
    const [after] = await env.sql`select count(*)::int as n from poses`
    expect(after!.n).toBe(before!.n)
  })

  it('keeps one name per category (409 conflict, ignoring case), the same name elsewhere is fine', async () => {
    const body = pose()
    expect((await create(body)).status).toBe(201)
    const again = await create({ ...body, name: body.name.toUpperCase(), tags: [] })
    expect(again.status).toBe(409)
    expect(again.json.error.code).toBe('conflict')
    expect((await create({ ...body, category: 'dance' })).status).toBe(201)
    const other = await create(pose())
    const renamed = await put(other.json.id, { ...pose(), name: body.name })
    expect(renamed.status).toBe(409)
  })

  it('takes a name in NFC: composed and decomposed spellings are one name, and one search', async () => {
    const stem = `Grand jet${crypto.randomUUID().slice(0, 8)}`
    const composed = await create(pose({ name: `${stem} \u00e9` }))
    expect(composed.status).toBe(201)
    const decomposed = await create(pose({ name: `${stem} e\u0301` }))
    expect([decomposed.status, decomposed.json.error?.code]).toEqual([409, 'conflict'])
    const byDecomposed = await api.get(
      `/v1/library/poses?q=${encodeURIComponent(`${stem} e\u0301`)}`,
    )
    expect(byDecomposed.json.items.map((p: any) => p.id)).toEqual([composed.json.id])
    // stored as NFC, whichever way it came
    const other = await create(pose({ name: `${stem} caf` + 'e\u0301' + 's' }))
    expect(other.json.name).toBe(`${stem} caf\u00e9s`)
  })

  it('replays a creation retried with its Idempotency-Key, without a second pose', async () => {
    const body = pose()
    const headers = { 'idempotency-key': `pose-${crypto.randomUUID()}` }
    const first = await api.post('/v1/admin/library/poses', body, admin.token, headers)
    expect(first.status).toBe(201)
    // on another instance too: the record is in Postgres
    const again = await apiTwo.post('/v1/admin/library/poses', body, admin.token, headers)
    expect({ status: again.status, json: again.json }).toEqual({ status: 201, json: first.json })
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    const listed = await api.get(`/v1/library/poses?q=${encodeURIComponent(body.name)}`)
    expect(listed.json.items.map((p: any) => p.id)).toEqual([first.json.id])
    // the same key with another pose is a conflict, and creates nothing
    const other = await api.post('/v1/admin/library/poses', pose(), admin.token, headers)
    expect(other.status).toBe(409)
    expect(other.json.error.code).toBe('idempotency_conflict')
    const long = { 'idempotency-key': 'k'.repeat(256) }
    const refused = await api.post('/v1/admin/library/poses', pose(), admin.token, long)
    expect(refused.status).toBe(422)
    expect(refused.json.error.details[0].path).toBe('/headers/idempotency-key')
  })

  it('answers a retried creation with its pose when the key’s record was lost after the pose committed', async () => {
    const body = pose()
    const key = `pose-${crypto.randomUUID()}`
    const first = await create(body, admin.token, { 'idempotency-key': key })
    expect(first.status).toBe(201)
    // what a database gone between the pose's commit and the record's completion leaves:
    // the key released (or its hold expired) with no answer recorded
    await env.sql`delete from idempotency_keys where key = ${key}`
    const retried = await create(body, admin.token, { 'idempotency-key': key })
    expect({ status: retried.status, json: retried.json }).toEqual({
      status: 201,
      json: first.json,
    })
    const listed = await api.get(`/v1/library/poses?q=${encodeURIComponent(body.name)}`)
    expect(listed.json.items.map((p: any) => p.id)).toEqual([first.json.id])
    // another pose under the key, its record gone too, is a request of its own: created
    await env.sql`delete from idempotency_keys where key = ${key}`
    const another = await create(pose(), admin.token, { 'idempotency-key': key })
    expect(another.status).toBe(201)
    expect(another.json.id).not.toBe(first.json.id)
    // without a key every request is its own: the same name again is the 409 it always was
    expect((await create(body)).status).toBe(409)
  })

  it('deletes a pose used by a generation: it leaves the library, the generation keeps it', async () => {
    const created = (await create(pose())).json
    const grant = await api.post(
      '/v1/admin/credits/grants',
      { userId: user.user.id, amount: 1000, reason: 'test' },
      admin.token,
    )
    expect(grant.status).toBe(201)
    const gen = await api.post(
      '/v1/generations',
      { mode: 'library', poseIds: [created.id], variations: 2 },
      user.token,
    )
    expect(gen.status).toBe(202)
    const countOf = async () =>
      (await api.get('/v1/library/categories')).json.items.find((c: any) => c.id === 'standing')
        .poseCount
    const countBefore = await countOf()

    expect((await remove(created.id)).status).toBe(204)
    expect((await remove(created.id)).status).toBe(404)
    expect((await api.get(`/v1/library/poses/${created.id}`)).status).toBe(404)
    const search = await api.get(`/v1/library/poses?q=${encodeURIComponent(created.name)}`)
    expect(search.json.items).toEqual([])
    expect(await countOf()).toBe(countBefore - 1)
    expect((await put(created.id, pose())).status).toBe(404)

    const kept = await api.get(`/v1/generations/${gen.json.id}`, user.token)
    expect(kept.status).toBe(200)
    expect(kept.json.items.map((i: any) => i.key)).toEqual([`${created.id}-v0`, `${created.id}-v1`])
    // the queued items still render it
    expect(await one.library.load(created.id)).toMatchObject({ id: created.id })
    // but nobody can start a new generation with it
    const refused = await api.post(
      '/v1/generations',
      { mode: 'library', poseIds: [created.id], variations: 1 },
      user.token,
    )
    expect(refused.status).toBe(422)
    // and its name is free again
    expect((await create({ ...pose(), name: created.name })).status).toBe(201)
  })
})

describe('pose cache', () => {
  it('serves repeated reads from the cache and is cleared on every instance by an admin write', async () => {
    const created = (await create(pose())).json
    await caughtUp(two, one)
    const path = `/v1/library/poses/${created.id}`
    const listPath = `/v1/library/poses?q=${encodeURIComponent(created.name)}`
    expect((await apiTwo.get(path)).json.name).toBe(created.name)
    expect((await apiTwo.get(listPath)).json.items.map((p: any) => p.id)).toEqual([created.id])
    const hits = two.poseCache.stats().hits
    expect((await apiTwo.get(path)).json.name).toBe(created.name)
    expect((await apiTwo.get(listPath)).json.items.length).toBe(1)
    expect(two.poseCache.stats().hits).toBe(hits + 2)

    // a write on instance one: instance two hears of it through Redis
    const renamed = pose()
    expect((await put(created.id, renamed)).status).toBe(200)
    await caughtUp(two, one)
    expect((await apiTwo.get(path)).json.name).toBe(renamed.name)
    expect((await apiTwo.get(listPath)).json.items).toEqual([])

    expect((await remove(created.id)).status).toBe(204)
    await caughtUp(two, one)
    expect((await apiTwo.get(path)).status).toBe(404)
  })

  it('reports its hit ratio as a metric', async () => {
    const text = await (await one.app.handle(new Request('http://localhost/metrics'))).text()
    expect(text).toMatch(/pose_cache_requests_total\{result="hit"[^}]*\} \d+/)
    expect(text).toContain('pose_cache_hit_ratio')
  })

  it('holds at most maxEntries, each for at most ttlMs', async () => {
    let now = 0
    const cache = makePoseCache({ maxEntries: 2, ttlMs: 100, now: () => now })
    let loads = 0
    const get = (key: string) => cache.get(key, async () => `${key}:${++loads}`)
    await get('a')
    await get('b')
    await get('a') // a is now the most recent
    await get('c') // evicts b
    expect(cache.stats().entries).toBe(2)
    expect(await get('a')).toBe('a:1')
    expect(await get('b')).toBe('b:4')
    now = 101
    expect(await get('b')).toBe('b:5')
  })

  it('does not store what a read in flight during a clear brought back', async () => {
    const cache = makePoseCache()
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const stale = cache.get('k', async () => {
      await gate
      return 'old'
    })
    cache.clear()
    release()
    expect(await stale).toBe('old')
    expect(await cache.get('k', async () => 'new')).toBe('new')
  })
})

describe('OpenAPI', () => {
  it('documents the search parameters and the admin pose endpoints', async () => {
    const doc = (await api.get('/openapi/json')).json
    const params = doc.paths['/v1/library/poses'].get.parameters.map((p: any) => p.name)
    expect(params).toEqual(expect.arrayContaining(['q', 'tag', 'category', 'limit', 'cursor']))
    expect(Object.keys(doc.paths['/v1/admin/library/poses'].post.responses)).toEqual(
      expect.arrayContaining(['201', '409', '422']),
    )
    const byId = doc.paths['/v1/admin/library/poses/{id}']
    expect(Object.keys(byId.put.responses)).toEqual(expect.arrayContaining(['200', '404', '409']))
    expect(Object.keys(byId.delete.responses)).toEqual(expect.arrayContaining(['204', '404']))
  })
})
