import { expect } from 'bun:test'
import { client } from '../support/http'

/**
 * Library search cases run against Postgres and against embedded PGlite
 * (search.test.ts): both modes run the same SQL, and these prove it answers
 * the same. `api` must have registered `admin` as an admin.
 */
type Api = ReturnType<typeof client>

export const KEYPOINTS = Array.from({ length: 17 }, (_, i) => [0.3 + i * 0.02, 0.5, 2])

/** Names that a LIKE without escaping would confuse with their neighbours. */
export const PROBES = [
  { name: 'Probe 100% stretch', tags: ['probe'] },
  { name: 'Probe 100x stretch', tags: ['probe'] },
  { name: 'Probe a_b', tags: ['probe'] },
  { name: 'Probe axb', tags: ['probe'] },
  { name: 'Probe back\\slash', tags: ['probe'] },
  { name: 'Probe backslash', tags: ['probe'] },
  { name: 'Quiet figure', tags: ['zz-special-tag', 'probe'] },
]

export async function addProbes(api: Api, token: string) {
  for (const p of PROBES) {
    const res = await api.post(
      '/v1/admin/library/poses',
      { ...p, category: 'standing', difficulty: 'easy', keypoints: KEYPOINTS },
      token,
    )
    expect(res.status).toBe(201)
  }
}

export async function pages(api: Api, query: string, limit: number) {
  const seen: any[] = []
  let cursor: string | null = null
  let calls = 0
  do {
    const res = await api.get(
      `/v1/library/poses?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`,
    )
    expect({ query, status: res.status }).toEqual({ query, status: 200 })
    expect(res.json.items.length).toBeLessThanOrEqual(limit)
    seen.push(...res.json.items)
    cursor = res.json.nextCursor
    if (++calls > 500) throw new Error(`no end of pages for ${query}`)
  } while (cursor)
  return seen
}

const names = (poses: any[]) => poses.map((p) => p.name)

export async function searchCases(api: Api) {
  const q = async (text: string) => names(await pages(api, `&q=${encodeURIComponent(text)}`, 100))

  // % _ \ match themselves
  expect(await q('100%')).toEqual(['Probe 100% stretch'])
  expect(await q('a_b')).toEqual(['Probe a_b'])
  expect(await q('k\\s')).toEqual(['Probe back\\slash'])
  expect(await q('%')).toEqual(['Probe 100% stretch'])
  expect(await q('_')).toEqual(['Probe a_b'])
  // case-insensitive, on names and on tags
  expect(await q('PROBE A_B')).toEqual(['Probe a_b'])
  expect(await q('pRoBe 100')).toEqual(['Probe 100% stretch', 'Probe 100x stretch'])
  expect(await q('SPECIAL-T')).toEqual(['Quiet figure'])
  expect(await q('no pose is called this')).toEqual([])

  // every filter combination, walked in small pages, equals the whole library
  // filtered here: same order, no duplicate, no gap
  const all = await pages(api, '', 100)
  const has = (p: any, text: string) =>
    p.name.toLowerCase().includes(text) || p.tags.some((t: string) => t.includes(text))
  const combos: { query: string; keep: (p: any) => boolean }[] = []
  for (const text of [undefined, 'st', 'probe'])
    for (const tags of [[], ['front-view'], ['casual', 'street']])
      for (const category of [undefined, 'standing']) {
        const query =
          (text ? `&q=${text}` : '') +
          tags.map((t) => `&tag=${t}`).join('') +
          (category ? `&category=${category}` : '')
        const keep = (p: any) =>
          (!text || has(p, text)) &&
          tags.every((t) => p.tags.includes(t)) &&
          (!category || p.category === category)
        combos.push({ query, keep })
      }
  let nonEmpty = 0
  for (const { query, keep } of combos) {
    const expected = all.filter(keep).map((p) => p.id)
    if (expected.length > 2) nonEmpty++
    for (const limit of [2, 7]) {
      const got = (await pages(api, query, limit)).map((p) => p.id)
      expect({ query, limit, got }).toEqual({ query, limit, got: expected })
    }
  }
  // the combinations are not vacuous
  expect(nonEmpty).toBeGreaterThan(5)

  // tags: all must match
  const both = await pages(api, '&tag=casual&tag=street', 100)
  expect(both.length).toBeGreaterThan(0)
  expect(both.every((p) => p.tags.includes('casual') && p.tags.includes('street'))).toBe(true)
  expect(both.length).toBeLessThan((await pages(api, '&tag=casual', 100)).length)

  // refused at the edge with the parameter's path
  for (const bad of ['&q=', `&q=${'x'.repeat(101)}`, '&q=a%0Ab', '&q=%00', '&tag=Front View']) {
    const res = await api.get(`/v1/library/poses?${bad}`)
    expect({ bad, status: res.status }).toEqual({ bad, status: 422 })
    expect(res.json.error.details[0].path).toMatch(/^\/(q|tag)/)
  }
  // a lone surrogate cannot travel in a URL: its UTF-8 form decodes to U+FFFD, never a 500
  const lone = await api.get('/v1/library/poses?q=%ED%A0%80')
  expect(lone.status).toBe(200)
}
