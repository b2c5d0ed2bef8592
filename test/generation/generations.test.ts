import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import sharp from 'sharp'
import { claimDueItems } from '../../src/generation/queue/repository'
import { RENDER_RETRY_MESSAGE } from '../../src/generation/queue/retry-policy'
import { checkLedger, readBalance } from '../../src/ledger/service'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'
import { hang, imageResponse, startFakeInference } from './fake-inference'
import { sampleImage } from './fixtures'

// rendering tests wait for real renders and retries; plain `bun test` allows 5 s per test
setDefaultTimeout(60_000)

const env = await useTestEnv()
/** Accept-only instance: no renderer pool, so queued work stays queued. */
const acceptor = await env.instance({
  ADMIN_EMAILS: 'admin@example.com',
  RENDER_CONCURRENCY: '0',
  MAX_ACTIVE_GENERATIONS: '1000',
  MAX_IMAGES_PER_HOUR: '100000',
})
const api = client(acceptor)
const admin = await api.register('admin@example.com')
const poseIds: string[] = (await env.sql`select id from poses order by name limit 20`).map(
  (r) => r.id,
)

async function funded(credits: number) {
  const u = await api.register()
  if (credits > 0) {
    const res = await api.post(
      '/v1/admin/credits/grants',
      { userId: u.user.id, amount: credits, reason: 'test' },
      admin.token,
    )
    expect(res.status).toBe(201)
  }
  return u
}

/** Two poses × two variations on the acceptor (no renderer): four items, 120 credits, all queued. */
async function fourQueuedItems(token: string) {
  const res = await api.post(
    '/v1/generations',
    { mode: 'library', poseIds: poseIds.slice(0, 2), variations: 2 },
    token,
  )
  expect(res.status).toBe(202)
  return res.json
}

async function waitFinished(inst: Instance, token: string, id: string, timeoutMs = 20_000) {
  let g: any
  await waitFor(
    async () => {
      g = (await client(inst).get(`/v1/generations/${id}`, token)).json
      return g.finishedAt !== null
    },
    timeoutMs,
    `generation ${id} to finish`,
  )
  return g
}

async function fetchImage(inst: Instance, url: string) {
  const res = await inst.app.handle(new Request(`http://localhost${url}`))
  expect(res.status).toBe(200)
  return { type: res.headers.get('content-type'), bytes: new Uint8Array(await res.arrayBuffer()) }
}

describe('accepting generations', () => {
  it('charges in full, queues every item and reports a queue position', async () => {
    const { token } = await funded(1000)
    const res = await api.post(
      '/v1/generations',
      { mode: 'library', poseIds: poseIds.slice(0, 2), variations: 3 },
      token,
    )
    expect(res.status).toBe(202)
    const g = res.json
    expect(g).toMatchObject({
      status: 'queued',
      mode: 'library',
      totalItems: 6,
      creditsCharged: 180,
      creditsRefunded: 0,
    })
    expect(g.items.map((i: any) => i.key).sort()).toEqual(
      poseIds
        .slice(0, 2)
        .flatMap((p) => [0, 1, 2].map((v) => `${p}-v${v}`))
        .sort(),
    )
    expect(typeof g.queuePosition).toBe('number')
    expect((await api.get('/v1/credits', token)).json.balance).toBe(820)
  })

  it('adds the background price per image', async () => {
    const { token } = await funded(1000)
    const res = await api.post(
      '/v1/generations',
      {
        mode: 'text',
        prompt: 'a dancer at dawn',
        variations: 2,
        background: { mode: 'color', value: '#112233' },
      },
      token,
    )
    expect(res.status).toBe(202)
    expect(res.json.creditsCharged).toBe(2 * (30 + 10))
  })

  it('counts a prompt background’s 500 characters after NFC, as code points, like a prompt', async () => {
    const { token } = await funded(1000)
    // 50 words of six emoji (one code point, two UTF-16 units each), then 50 of a
    // decomposed é and an x (three code points, two after NFC): 500 characters
    // and 100 words after NFC, 850 UTF-16 units as sent
    const emoji = Array.from({ length: 50 }, (_, i) =>
      Array.from({ length: 6 }, (_, k) => String.fromCodePoint(0x1f400 + ((i + k * 10) % 90))).join(
        '',
      ),
    )
    const accented = Array.from({ length: 50 }, () => 'e\u0301x')
    const value = `${[...emoji, ...accented].join(' ')}y`
    expect([...value.normalize('NFC')].length).toBe(500)
    const body = (v: string) => ({
      mode: 'text',
      prompt: 'a dancer at dawn',
      variations: 1,
      background: { mode: 'prompt', value: v },
    })
    expect((await api.post('/v1/generations', body(value), token)).status).toBe(202)
    const over = await api.post('/v1/generations', body(`${value}x`), token)
    expect([over.status, over.json.error.details[0].path]).toEqual([422, '/background/value'])
  })

  it('accepts exactly 50 of 100 concurrent generations costing 30 against 1,500', async () => {
    const { token, user } = await funded(1500)
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        api.post(
          '/v1/generations',
          { mode: 'text', prompt: 'a quiet street', variations: 1 },
          token,
        ),
      ),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 202)).toHaveLength(50)
    expect(statuses.filter((s) => s === 402)).toHaveLength(50)
    const refused = results.find((r) => r.status === 402)!
    expect(refused.json.error).toMatchObject({
      code: 'insufficient_credits',
      details: { required: 30, available: 0 },
    })
    expect(await readBalance(acceptor.database.db, user.id)).toBe(0)
    const n = (
      await env.sql<
        { n: number }[]
      >`select count(*)::int as n from generations where user_id = ${user.id}`
    )[0]!.n
    expect(n).toBe(50)
    expect((await checkLedger(acceptor.database.db)).ok).toBe(true)
  })

  it('makes a double click with one Idempotency-Key one generation and one charge', async () => {
    const { token, user } = await funded(300)
    const body = { mode: 'text', prompt: 'two cats', variations: 2 }
    const [a, b] = await Promise.all([
      api.post('/v1/generations', body, token, { 'idempotency-key': 'click-1' }),
      api.post('/v1/generations', body, token, { 'idempotency-key': 'click-1' }),
    ])
    const again = await api.post('/v1/generations', body, token, { 'idempotency-key': 'click-1' })
    expect([a.status, b.status].sort()).toEqual([202, 409])
    expect(again.status).toBe(202)
    expect(again.json.id).toBe((a.status === 202 ? a : b).json.id)
    const n = (
      await env.sql<
        { n: number }[]
      >`select count(*)::int as n from generations where user_id = ${user.id}`
    )[0]!.n
    expect(n).toBe(1)
    expect(await readBalance(acceptor.database.db, user.id)).toBe(240)
    const other = await api.post('/v1/generations', { ...body, variations: 3 }, token, {
      'idempotency-key': 'click-1',
    })
    expect(other.status).toBe(409)
    expect(other.json.error.code).toBe('idempotency_conflict')
  })

  it('keeps no refusal under a key: after a top-up the same key is accepted, once', async () => {
    const { token, user } = await funded(0)
    const body = { mode: 'text', prompt: 'paid for later', variations: 1 }
    const key = { 'idempotency-key': 'after-top-up' }
    const refused = await api.post('/v1/generations', body, token, key)
    expect(refused.status).toBe(402)
    const grant = { userId: user.id, amount: 30, reason: 'top-up' }
    expect((await api.post('/v1/admin/credits/grants', grant, admin.token)).status).toBe(201)
    const accepted = await api.post('/v1/generations', body, token, key)
    expect(accepted.status).toBe(202)
    const replayed = await api.post('/v1/generations', body, token, key)
    expect([replayed.status, replayed.json.id]).toEqual([202, accepted.json.id])
    expect(await readBalance(acceptor.database.db, user.id)).toBe(0)
  })

  it('answers the accepted generation exactly as GET then shows it, and replays it so', async () => {
    const { token } = await funded(3000)
    // items in key order across poses and variations, as GET orders them
    const body = { mode: 'library', poseIds: poseIds.slice(0, 5).reverse(), variations: 4 }
    const accepted = await api.post('/v1/generations', body, token, { 'idempotency-key': 'same' })
    expect(accepted.status).toBe(202)
    expect(accepted.json.items).toHaveLength(20)
    const shown = await api.get(`/v1/generations/${accepted.json.id}`, token)
    expect(accepted.json).toEqual(shown.json)
    const replayed = await api.post('/v1/generations', body, token, { 'idempotency-key': 'same' })
    expect(replayed.status).toBe(202)
    expect(replayed.headers.get('idempotent-replayed')).toBe('true')
    expect(replayed.json).toEqual(accepted.json)
  })

  it('replays the first answer though a pose it used is gone since', async () => {
    const { token } = await funded(300)
    // a pose no other test here uses (they take the first 20 by name)
    const [{ id: pose }] = (await env.sql`select id from poses order by name desc limit 1`) as any
    const body = { mode: 'library', poseIds: [pose], variations: 1 }
    const first = await api.post('/v1/generations', body, token, { 'idempotency-key': 'gone' })
    expect(first.status).toBe(202)
    const removed = await api.call('DELETE', `/v1/admin/library/poses/${pose}`, {
      token: admin.token,
    })
    expect(removed.status).toBe(204)
    const again = await api.post('/v1/generations', body, token, { 'idempotency-key': 'gone' })
    expect(again.status).toBe(202)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(again.json).toEqual(first.json)
  })

  it('answers the hourly and active limits with 429 and Retry-After, charging nothing', async () => {
    const limited = await env.instance({
      RENDER_CONCURRENCY: '0',
      MAX_ACTIVE_GENERATIONS: '2',
      MAX_IMAGES_PER_HOUR: '5',
    })
    const lapi = client(limited)
    const { token, user } = await funded(10_000)
    // the limits are the owner's: the user's actor moves from the acceptor to this instance
    await acceptor.userActors.release(user.id)
    const text = (variations: number) => ({ mode: 'text', prompt: 'a red kite', variations })
    expect((await lapi.post('/v1/generations', text(1), token)).status).toBe(202)
    expect((await lapi.post('/v1/generations', text(1), token)).status).toBe(202)
    const active = await lapi.post('/v1/generations', text(1), token)
    expect(active.status).toBe(429)
    expect(active.json.error.code).toBe('rate_limited')
    expect(Number(active.headers.get('retry-after'))).toBeGreaterThan(0)
    const hourly = await lapi.post('/v1/generations', text(4), token)
    expect(hourly.status).toBe(429)
    expect(Number(hourly.headers.get('retry-after'))).toBeGreaterThan(3000)
    expect(await readBalance(limited.database.db, user.id)).toBe(10_000 - 60)
  })

  it('refuses invalid bodies with 422 and paths, changing nothing', async () => {
    const { token, user } = await funded(1000)
    const cases: [unknown, string][] = [
      [{ mode: 'library', variations: 1 }, '/poseIds'],
      [{ mode: 'library', poseIds: [crypto.randomUUID()], variations: 1 }, '/poseIds/0'],
      [{ mode: 'library', poseIds: [poseIds[0]], variations: 9 }, '/variations'],
      [{ mode: 'text', prompt: 'hi', variations: 1 }, '/prompt'],
      [{ mode: 'text', prompt: 'a <script>x</script> cat', variations: 1 }, '/prompt'],
      [{ mode: 'text', prompt: 'see javascript:alert(1) now', variations: 1 }, '/prompt'],
      [{ mode: 'text', prompt: 'aaaaaaaaaaaa cat', variations: 1 }, '/prompt'],
      [
        { mode: 'text', prompt: Array.from({ length: 101 }, () => 'w').join(' '), variations: 1 },
        '/prompt',
      ],
      [
        {
          mode: 'text',
          prompt: 'a cat',
          variations: 1,
          background: { mode: 'color', value: 'red' },
        },
        '/background/value',
      ],
      [{ mode: 'text', prompt: 'a cat', variations: 1, uploadId: 'not-a-uuid' }, '/uploadId'],
      [{ mode: 'text', prompt: 'a cat', variations: 1, deadlineSeconds: 5 }, '/deadlineSeconds'],
      [{ mode: 'text', prompt: 'a cat', variations: 1, formats: ['square', 'square'] }, '/formats'],
      [{ mode: 'paint', variations: 1 }, '/mode'],
    ]
    for (const [body, path] of cases) {
      const res = await api.post('/v1/generations', body, token)
      expect(res.status, JSON.stringify(body)).toBe(422)
      expect(res.json.error.details.map((d: any) => d.path)).toContain(path)
    }
    expect(await readBalance(acceptor.database.db, user.id)).toBe(1000)
  })

  it('answers 404 for another user’s generation, cancel and media', async () => {
    const owner = await funded(100)
    const other = await funded(0)
    const g = (
      await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'private thing', variations: 1 },
        owner.token,
      )
    ).json
    expect((await api.get(`/v1/generations/${g.id}`, other.token)).status).toBe(404)
    expect((await api.post(`/v1/generations/${g.id}/cancel`, {}, other.token)).status).toBe(404)
    expect((await api.get(`/v1/generations/${crypto.randomUUID()}`, owner.token)).status).toBe(404)
    // ids are opaque: one that could never be a generation's names none
    expect((await api.get('/v1/generations/not-a-uuid', owner.token)).status).toBe(404)
  })

  it('lists generations newest first with a status filter and cursor', async () => {
    const { token } = await funded(1000)
    const ids: string[] = []
    for (let i = 0; i < 3; i++)
      ids.push(
        (
          await api.post(
            '/v1/generations',
            { mode: 'text', prompt: `picture ${i}`, variations: 1 },
            token,
          )
        ).json.id,
      )
    await api.post(`/v1/generations/${ids[0]}/cancel`, {}, token)
    const page1 = await api.get('/v1/generations?limit=2', token)
    expect(page1.json.items.map((g: any) => g.id)).toEqual([ids[2], ids[1]])
    expect(page1.json.items[0].items).toBeUndefined()
    const page2 = await api.get(`/v1/generations?limit=2&cursor=${page1.json.nextCursor}`, token)
    expect(page2.json).toMatchObject({
      items: [{ id: ids[0], status: 'cancelled' }],
      nextCursor: null,
    })
    for (const forged of [
      ['x', 'y'],
      [1, 2],
      ['2026-01-01T00:00:00Z', 'not-a-uuid'],
    ]) {
      const cursor = Buffer.from(JSON.stringify(forged)).toString('base64url')
      const res = await api.get(`/v1/generations?cursor=${cursor}`, token)
      expect(res.status).toBe(422)
      expect(res.json.error.details[0].path).toBe('/cursor')
    }
    const queued = await api.get('/v1/generations?status=queued', token)
    expect(queued.json.items.map((g: any) => g.id)).toEqual([ids[2], ids[1]])
  })

  it('pages through generations created in the same instant, none skipped', async () => {
    const { token, user } = await funded(1000)
    const ids: string[] = []
    for (let i = 0; i < 3; i++)
      ids.push(
        (
          await api.post(
            '/v1/generations',
            { mode: 'text', prompt: `same ${i}`, variations: 1 },
            token,
          )
        ).json.id,
      )
    // one group commit gives its generations one now(), with microseconds
    await env.sql`update generations set created_at = '2026-11-30 12:00:00.123456+00'
      where user_id = ${user.id}`
    const seen: string[] = []
    let cursor: string | null = ''
    for (let page = 0; page < 5 && cursor !== null; page++) {
      const res = await api.get(
        `/v1/generations?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
        token,
      )
      expect(res.status).toBe(200)
      seen.push(...res.json.items.map((g: any) => g.id))
      cursor = res.json.nextCursor
    }
    expect(seen).toEqual([...ids].sort().reverse())
  })
})

describe('cancel and deadline', () => {
  it('cancels queued items and refunds each exactly once; cancel is idempotent', async () => {
    const { token, user } = await funded(1000)
    const g = await fourQueuedItems(token)
    const first = await api.post(`/v1/generations/${g.id}/cancel`, {}, token)
    expect(first.status).toBe(200)
    expect(first.json).toMatchObject({
      status: 'cancelled',
      cancelledItems: 4,
      creditsRefunded: 120,
      queuePosition: null,
    })
    expect(first.json.finishedAt).not.toBeNull()
    const second = await api.post(`/v1/generations/${g.id}/cancel`, {}, token)
    expect(second.json).toMatchObject({
      status: 'cancelled',
      cancelledItems: 4,
      creditsRefunded: 120,
    })
    expect(await readBalance(acceptor.database.db, user.id)).toBe(1000)
    const refunds =
      await env.sql`select count(*)::int as n from ledger_entries where user_id = ${user.id} and kind = 'refund'`
    expect(refunds[0]!.n).toBe(4)
    // each cancelled item is a generation.item event with the counters, then the finish
    const events = async () => (await acceptor.events.readAfter(user.id, '0-0', 100)).events
    await waitFor(
      async () => (await events()).some((e) => e.name === 'generation.finished'),
      5000,
      'the events',
    )
    const log = await events()
    const items = log.filter((e) => e.name === 'generation.item').map((e) => e.data as any)
    expect(items.map((d) => d.item.key).sort()).toEqual(g.items.map((i: any) => i.key).sort())
    for (const d of items)
      expect(d).toEqual({
        generationId: g.id,
        // the generation's own status changes with the finish that follows
        status: 'queued',
        totalItems: 4,
        succeededItems: 0,
        failedItems: 0,
        cancelledItems: 4,
        item: {
          id: expect.any(String),
          key: expect.any(String),
          status: 'cancelled',
          imageUrl: null,
          thumbnailUrl: null,
          exports: {},
          error: null,
        },
      })
    expect(log.at(-1)!.name).toBe('generation.finished')
  })

  it('shows a generation running once a renderer claimed an item, before its actor hears of it', async () => {
    const { token } = await funded(1000)
    const g = await fourQueuedItems(token)
    // what a renderer's claim does to one item (queue/repository.ts), its `claimed` command
    // to the user's actor not sent yet: the window the view must not contradict itself in
    const [claimed] = await env.sql`
      update generation_items set status = 'running', lease_owner = 'claim-window',
        lease_expires_at = now() + interval '1 hour', attempts = attempts + 1, started_at = now()
      where id = (select id from generation_items where generation_id = ${g.id} order by key limit 1)
      returning key`
    const got = (await api.get(`/v1/generations/${g.id}`, token)).json
    expect(got.status).toBe('running')
    expect(got.items.find((i: any) => i.key === claimed!.key).status).toBe('running')
    const cancelled = await api.post(`/v1/generations/${g.id}/cancel`, {}, token)
    expect(cancelled.status).toBe(200)
    // the running item finishes; the three queued ones are cancelled and refunded
    expect(cancelled.json).toMatchObject({
      status: 'running',
      cancelledItems: 3,
      creditsRefunded: 90,
      finishedAt: null,
    })
    expect(cancelled.json.items.map((i: any) => i.status).sort()).toEqual([
      'cancelled',
      'cancelled',
      'cancelled',
      'running',
    ])
  })

  it('cancels and refunds items not started by the deadline', async () => {
    const { token, user } = await funded(1000)
    const g = (
      await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'a late train', variations: 3, deadlineSeconds: 600 },
        token,
      )
    ).json
    await env.sql`update generations set deadline_at = now() - interval '1 second' where id = ${g.id}`
    await acceptor.sweeper.sweep()
    const after = (await api.get(`/v1/generations/${g.id}`, token)).json
    expect(after).toMatchObject({ status: 'cancelled', cancelledItems: 3, creditsRefunded: 90 })
    expect(await readBalance(acceptor.database.db, user.id)).toBe(1000)
  })
})

describe('rendering', () => {
  const renderEnv = {
    RENDER_SIZE: '128',
    RENDER_CONCURRENCY: '2',
    RENDER_SWEEP_MS: '60000',
    MAX_ACTIVE_GENERATIONS: '1000',
    MAX_IMAGES_PER_HOUR: '100000',
  }

  // every instance on this database is one cluster: leftovers of the accept-only
  // tests would be rendered too, so they are set aside, and each test closes its worker
  async function setAsideQueued() {
    await env.sql`update generation_items set status = 'cancelled', finished_at = now() where status = 'queued'`
  }
  beforeAll(setAsideQueued)

  /** A worker rendering through a fake inference server at `url`. */
  const httpWorker = (url: string, overrides: Record<string, string> = {}) =>
    env.instance({ ...renderEnv, RENDERER: 'http', RENDER_HTTP_URL: url, ...overrides })

  /** Starts a text generation through `inst`'s API; the generation as answered. */
  const postText = async (inst: Instance, token: string, prompt: string, variations: number) =>
    (await client(inst).post('/v1/generations', { mode: 'text', prompt, variations }, token)).json

  async function withWorker(
    overrides: Record<string, string>,
    run: (worker: Instance) => Promise<void>,
  ) {
    const worker = await env.instance({ ...renderEnv, ...overrides })
    try {
      await run(worker)
    } finally {
      await worker.close()
    }
  }

  it('renders library and text generations to images sharp decodes, with thumbnail and exports', () =>
    withWorker({}, async (worker) => {
      const { token } = await funded(1000)
      const lib = (
        await client(worker).post(
          '/v1/generations',
          { mode: 'library', poseIds: poseIds.slice(0, 1), variations: 2, formats: ['story'] },
          token,
        )
      ).json
      const txt = (
        await client(worker).post(
          '/v1/generations',
          {
            mode: 'text',
            prompt: 'a lighthouse in fog',
            variations: 1,
            background: { mode: 'prompt', value: 'warm sunset sky' },
          },
          token,
        )
      ).json
      for (const id of [lib.id, txt.id]) {
        const g = await waitFinished(worker, token, id)
        expect(g.status).toBe('succeeded')
        expect(g.startedAt).not.toBeNull()
        for (const item of g.items) {
          expect(item.status).toBe('succeeded')
          const image = await fetchImage(worker, item.imageUrl)
          expect(image.type).toBe('image/png')
          expect((await sharp(image.bytes).metadata()).width).toBe(128)
          const thumb = await fetchImage(worker, item.thumbnailUrl)
          expect(await sharp(thumb.bytes).metadata()).toMatchObject({ format: 'webp', width: 320 })
          // with a background, the thumbnail shows it too: not the renderer's transparent drawing
          expect((await sharp(thumb.bytes).stats()).isOpaque).toBe(true)
        }
      }
      const story = (await waitFinished(worker, token, lib.id)).items[0].exports.story
      const meta = await sharp((await fetchImage(worker, story)).bytes).metadata()
      expect([meta.width, meta.height]).toEqual([1080, 1920])
    }))

  it('serves media only to its owner or through a valid signed URL', () =>
    withWorker({}, async (worker) => {
      const owner = await funded(100)
      const other = await funded(0)
      const g = await waitFinished(
        worker,
        owner.token,
        (
          await client(worker).post(
            '/v1/generations',
            { mode: 'text', prompt: 'a locked box', variations: 1 },
            owner.token,
          )
        ).json.id,
      )
      const url: string = g.items[0].imageUrl
      const path = url.split('?')[0]!
      expect((await worker.app.handle(new Request(`http://localhost${path}`))).status).toBe(401)
      const asOther = await worker.app.handle(
        new Request(`http://localhost${path}`, {
          headers: { authorization: `Bearer ${other.token}` },
        }),
      )
      expect(asOther.status).toBe(404)
      const asOwner = await worker.app.handle(
        new Request(`http://localhost${path}`, {
          headers: { authorization: `Bearer ${owner.token}` },
        }),
      )
      expect(asOwner.status).toBe(200)
      const forged = url.replace(/sig=[0-9a-f]{4}/, 'sig=0000')
      expect((await worker.app.handle(new Request(`http://localhost${forged}`))).status).toBe(401)
      // an id that names no image answers as one that does: 401 without a token, 404 with one
      const missing = `/v1/media/${crypto.randomUUID()}`
      const unsigned = await worker.app.handle(new Request(`http://localhost${missing}`))
      expect(unsigned.status).toBe(401)
      const withToken = await worker.app.handle(
        new Request(`http://localhost${missing}`, {
          headers: { authorization: `Bearer ${other.token}` },
        }),
      )
      expect(withToken.status).toBe(404)
    }))

  it('refunds exactly the failed items of a partial generation (http renderer, permanent refusals)', async () => {
    const fake = await startFakeInference()
    afterAll(fake.stop)
    const png = await sampleImage('png')
    // the body of the request being answered is the newest one received
    fake.respond = () =>
      (fake.received.at(-1)!.body as { variation: number }).variation === 1
        ? Response.json({ error: 'refused' }, { status: 400 })
        : imageResponse(png)
    await withWorker(
      { RENDERER: 'http', RENDER_HTTP_URL: fake.url, RENDER_HTTP_TOKEN: 't' },
      async (worker) => {
        const { token, user } = await funded(1000)
        const g = (
          await client(worker).post(
            '/v1/generations',
            { mode: 'text', prompt: 'three birds', variations: 3 },
            token,
          )
        ).json
        const done = await waitFinished(worker, token, g.id)
        expect(done).toMatchObject({
          status: 'partial',
          succeededItems: 2,
          failedItems: 1,
          creditsCharged: 90,
          creditsRefunded: 30,
        })
        expect(done.items.find((i: any) => i.status === 'failed').error.code).toBeString()
        expect(await readBalance(worker.database.db, user.id)).toBe(1000 - 60)
        expect((await checkLedger(worker.database.db)).ok).toBe(true)
      },
    )
  })

  it('retries a render that times out, then fails the item and refunds it', async () => {
    const fake = await startFakeInference()
    afterAll(fake.stop)
    fake.respond = hang
    await withWorker(
      {
        RENDERER: 'http',
        RENDER_HTTP_URL: fake.url,
        RENDER_TIMEOUT_MS: '200',
        RENDER_MAX_ATTEMPTS: '2',
        RENDER_RETRY_BASE_MS: '10',
      },
      async (worker) => {
        const { token, user } = await funded(100)
        const g = (
          await client(worker).post(
            '/v1/generations',
            { mode: 'text', prompt: 'never arrives', variations: 1 },
            token,
          )
        ).json
        const done = await waitFinished(worker, token, g.id)
        expect(done).toMatchObject({ status: 'failed', failedItems: 1, creditsRefunded: 30 })
        expect(fake.requests).toBe(2)
        const attempts = (
          await env.sql<
            { attempts: number }[]
          >`select attempts from generation_items where generation_id = ${g.id}`
        )[0]!.attempts
        expect(attempts).toBe(2)
        expect(await readBalance(worker.database.db, user.id)).toBe(100)
      },
    )
  })

  it('shows an item waiting for its retry with a plain reason, never the failure’s own text', async () => {
    const fake = await startFakeInference()
    afterAll(fake.stop)
    // an image the decoder refuses: its error text is the library's, not the user's business
    fake.respond = () =>
      new Response('not a png at all', { headers: { 'content-type': 'image/png' } })
    const { token } = await funded(100)
    const worker = await httpWorker(fake.url, {
      RENDER_MAX_ATTEMPTS: '3',
      RENDER_RETRY_BASE_MS: '600000',
    })
    try {
      const g = await postText(worker, token, 'waits for its retry', 1)
      await waitFor(
        async () =>
          (
            await env.sql`select attempts from generation_items
              where generation_id = ${g.id} and status = 'queued' and attempts = 1`
          ).length === 1,
        10_000,
        'the first attempt to fail and wait for its retry',
      )
      const [item] = (await client(worker).get(`/v1/generations/${g.id}`, token)).json.items
      expect(item.status).toBe('queued')
      expect(item.error).toEqual({ code: 'render_failed', message: RENDER_RETRY_MESSAGE })
    } finally {
      await worker.close()
    }
  })

  it('releases a held item on drain so another instance can claim it at once, attempt given back', async () => {
    const fake = await startFakeInference()
    afterAll(fake.stop)
    fake.respond = hang
    const { token } = await funded(100)
    const worker = await httpWorker(fake.url, { DRAIN_TIMEOUT_MS: '400' })
    try {
      const g = await postText(worker, token, 'held then handed back', 1)
      await fake.whenInFlight(1)
      expect(worker.pool.held()).toBe(1)
      await worker.pool.drain()
      expect(worker.pool.held()).toBe(0)
      const [item] =
        await env.sql`select status, attempts, lease_owner, next_attempt_at <= now() as due from generation_items where generation_id = ${g.id}`
      expect(item).toEqual({ status: 'queued', attempts: 0, lease_owner: null, due: true })
    } finally {
      await worker.close()
    }
  })

  it('claims one item ahead per slot and hands it back at once on drain while the rendering one finishes', async () => {
    const fake = await startFakeInference()
    afterAll(fake.stop)
    const png = await sampleImage('png')
    const gate = Promise.withResolvers<void>()
    fake.respond = () => gate.promise.then(() => imageResponse(png))
    // the drain test before this one leaves its released item queued
    await setAsideQueued()
    const { token } = await funded(100)
    const worker = await httpWorker(fake.url, {
      RENDER_CONCURRENCY: '1',
      DRAIN_TIMEOUT_MS: '60000',
    })
    try {
      const g = await postText(worker, token, 'one rendering, one on deck', 2)
      const items = () =>
        env.sql`select key, status, attempts, lease_owner from generation_items where generation_id = ${g.id} order by key`
      await fake.whenInFlight(1)
      await waitFor(
        async () => (await items()).every((i) => i.status === 'running'),
        5000,
        'the second item to be claimed ahead',
      )
      expect(fake.inFlight).toBe(1)
      expect(worker.pool.held()).toBe(2)

      const draining = worker.pool.drain()
      await waitFor(async () => worker.pool.held() === 1, 5000, 'the waiting item to be released')
      const [first, second] = await items()
      const rendering = fake.received[0]!.body as { itemKey: string }
      const [inFlight, onDeck] =
        rendering.itemKey === first!.key ? [first, second] : [second, first]
      expect(inFlight).toMatchObject({ status: 'running', attempts: 1 })
      expect(onDeck).toMatchObject({ status: 'queued', attempts: 0, lease_owner: null })

      gate.resolve()
      await draining
      const after = await items()
      expect(after.map((i) => i.status).sort()).toEqual(['queued', 'succeeded'])
    } finally {
      // a failed expectation above must not leave the render (and the 60 s drain) hanging
      gate.resolve()
      await worker.close()
    }
  })

  it('reclaims an item leased by a dead worker after its lease and finishes it once, one image per key', async () => {
    const { token } = await funded(100)
    const g = (
      await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'an orphaned job', variations: 1 },
        token,
      )
    ).json
    const claimed = await claimDueItems(acceptor.database.db, 'dead-instance', 1000, 1)
    expect(claimed.map((i) => i.generation_id)).toContain(g.id)
    // the dead instance never heartbeats; its 1 ms lease is already over
    await withWorker({}, async (worker) => {
      await worker.sweeper.sweep()
      const done = await waitFinished(worker, token, g.id)
      expect(done.status).toBe('succeeded')
      const keys =
        await env.sql`select count(*)::int as n from media where storage_key like ${`generations/${g.id}/%`}`
      expect(keys[0]!.n).toBe(2) // the image and its thumbnail, once each
      // the dead owner's late report changes nothing
      const orphan = claimed.find((i) => i.generation_id === g.id)!
      const late = await worker.userActors.ask(orphan.user_id, {
        type: 'generation',
        command: {
          kind: 'outcome',
          itemId: orphan.id,
          owner: 'dead-instance',
          result: { status: 'failed', code: 'x', message: 'x' },
        },
      })
      expect(late).toMatchObject({ applied: false })
    })
  })

  it('serves a single image submitted after another user’s 160-image batch long before the batch ends', () =>
    withWorker({ RENDER_SIZE: '64' }, async (worker) => {
      const big = await funded(160 * 30)
      const small = await funded(30)
      const batch = (
        await client(worker).post(
          '/v1/generations',
          { mode: 'library', poseIds, variations: 8 },
          big.token,
        )
      ).json
      expect(batch.totalItems).toBe(160)
      const single = (
        await client(worker).post(
          '/v1/generations',
          { mode: 'text', prompt: 'just one', variations: 1 },
          small.token,
        )
      ).json
      const done = await waitFinished(worker, small.token, single.id)
      expect(done.status).toBe('succeeded')
      const progress = (await client(worker).get(`/v1/generations/${batch.id}`, big.token)).json
      expect(progress.succeededItems).toBeLessThan(20)
      await client(worker).post(`/v1/generations/${batch.id}/cancel`, {}, big.token)
    }))
})
