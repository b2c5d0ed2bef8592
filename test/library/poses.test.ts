import { describe, expect, it } from 'bun:test'
import { validateKeypoints } from '../../src/library/keypoints'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

const env = await useTestEnv()
const api = client(await env.instance())

async function allPoses(query = '', limit = 7) {
  const seen: any[] = []
  let cursor: string | null = null
  do {
    const res = await api.get(
      `/v1/library/poses?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`,
    )
    expect(res.status).toBe(200)
    seen.push(...res.json.items)
    cursor = res.json.nextCursor
  } while (cursor)
  return seen
}

describe('pose library', () => {
  it('ships at least 60 distinct poses over at least 6 categories, each with 17 valid keypoints', async () => {
    const poses = await allPoses('', 100)
    expect(poses.length).toBeGreaterThanOrEqual(60)
    expect(new Set(poses.map((p) => p.category)).size).toBeGreaterThanOrEqual(6)
    expect(new Set(poses.map((p) => p.name)).size).toBe(poses.length)
    expect(new Set(poses.map((p) => JSON.stringify(p.keypoints))).size).toBe(poses.length)
    for (const p of poses) expect(validateKeypoints(p.keypoints)).toEqual([])
  })

  it('walks every pose exactly once in name order across keyset pages', async () => {
    const paged = await allPoses('', 7)
    const whole = await allPoses('', 100)
    expect(paged.map((p) => p.id)).toEqual(whole.map((p) => p.id))
    expect(new Set(paged.map((p) => p.id)).size).toBe(paged.length)
    const names = paged.map((p) => p.name)
    expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
  })

  it('filters by category and counts poses per category', async () => {
    const categories = (await api.get('/v1/library/categories')).json.items
    expect(categories.length).toBeGreaterThanOrEqual(6)
    for (const c of categories.slice(0, 3)) {
      const inCategory = await allPoses(`&category=${c.id}`, 5)
      expect(inCategory.length).toBe(c.poseCount)
      expect(inCategory.every((p) => p.category === c.id)).toBe(true)
    }
    expect((await api.get('/v1/library/poses?category=no-such-thing')).json).toEqual({
      items: [],
      nextCursor: null,
    })
  })

  it('returns one pose, 404 for an unknown id and for one that is not an id', async () => {
    const [first] = (await api.get('/v1/library/poses?limit=1')).json.items
    const one = await api.get(`/v1/library/poses/${first.id}`)
    expect(one.status).toBe(200)
    expect(one.json).toEqual(first)
    const missing = await api.get(`/v1/library/poses/${crypto.randomUUID()}`)
    expect(missing.status).toBe(404)
    expect(missing.json.error).toMatchObject({
      code: 'not_found',
      requestId: missing.headers.get('x-request-id'),
    })
    const malformed = await api.get('/v1/library/poses/abc')
    expect([malformed.status, malformed.json.error.code]).toEqual([404, 'not_found'])
  })

  it('refuses bad limits and cursors with 422 and the path', async () => {
    for (const limit of ['0', '101', 'abc']) {
      const res = await api.get(`/v1/library/poses?limit=${limit}`)
      expect(res.status).toBe(422)
      expect(res.json.error.details.map((d: any) => d.path)).toContain('/limit')
    }
    const bad = await api.get('/v1/library/poses?cursor=not-a-cursor')
    expect(bad.status).toBe(422)
    expect(bad.json.error.details[0].path).toBe('/cursor')
  })

  it('refuses a cursor that decodes but is not [name, uuid] with 422, never a 500', async () => {
    const forged = [
      ['Running', 'not-a-uuid'],
      [1, 2],
      ['Running'],
      [{}, []],
      ['Running', crypto.randomUUID(), 3],
      ['nul\u0000name', crypto.randomUUID()],
    ]
    for (const values of forged) {
      const cursor = Buffer.from(JSON.stringify(values)).toString('base64url')
      const res = await api.get(`/v1/library/poses?cursor=${cursor}`)
      expect({ values, status: res.status }).toEqual({ values, status: 422 })
      expect(res.json.error.details).toEqual([{ path: '/cursor', message: expect.any(String) }])
    }
  })

  it('refuses a category that is not a category id with 422', async () => {
    for (const category of ['%00', 'Standing', '-x', 'a'.repeat(65)]) {
      const res = await api.get(`/v1/library/poses?category=${category}`)
      expect(res.status).toBe(422)
      expect(res.json.error.details.map((d: any) => d.path)).toContain('/category')
    }
  })
})

describe('validateKeypoints', () => {
  const valid = Array.from({ length: 17 }, () => [0.5, 0.5, 2])
  it('accepts 17 triples in range', () => expect(validateKeypoints(valid)).toEqual([]))
  it('rejects 16 points, out-of-range coordinates and a bad visibility', () => {
    expect(validateKeypoints(valid.slice(1))[0]!.path).toBe('/keypoints')
    const outOfRange = valid.map((k, i) => (i === 3 ? [1.2, 0.5, 2] : k))
    expect(validateKeypoints(outOfRange)).toEqual([
      { path: '/keypoints/3/0', message: expect.any(String) },
    ])
    const badVisibility = valid.map((k, i) => (i === 5 ? [0.5, 0.5, 3] : k))
    expect(validateKeypoints(badVisibility)[0]!.path).toBe('/keypoints/5/2')
  })
})
