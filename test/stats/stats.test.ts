import { describe, expect, it, setDefaultTimeout } from 'bun:test'
import type { KyselyPlugin } from 'kysely'
import { claimDueItems } from '../../src/generation/queue/repository'
import { signPayload } from '../../src/ledger/webhook-signature'
import { makeRedisKeys } from '../../src/redis/keys'
import { makeStats, readRange } from '../../src/stats/service'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

setDefaultTimeout(30_000)

const WEBHOOK_SECRET = 'stats-webhook-secret-0123456789'
const env = await useTestEnv()
const settings = {
  ADMIN_EMAILS: 'admin@example.com',
  RENDER_CONCURRENCY: '0', // nothing renders by itself: the test decides each outcome
  PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
}
const inst = await env.instance(settings)
const api = client(inst)
const admin = await api.register('admin@example.com')
const user = await api.register()
const other = await api.register()
const [poseA, poseB] = await env.sql`select id, name from poses order by name limit 2`

const DAY = 86_400_000
const today = new Date().toISOString().slice(0, 10)
const daysAgo = (n: number) => new Date(Date.now() - n * DAY).toISOString().slice(0, 10)

async function grant(userId: string, amount: number) {
  const res = await api.post(
    '/v1/admin/credits/grants',
    { userId, amount, reason: 'stats test' },
    admin.token,
  )
  expect(res.status).toBe(201)
}

async function purchase(userId: string, credits: number) {
  const raw = JSON.stringify({
    id: `evt_${crypto.randomUUID()}`,
    type: 'credits.purchased',
    userId,
    credits,
  })
  const sig = signPayload(raw, WEBHOOK_SECRET, Math.floor(Date.now() / 1000))
  const res = await api.call('POST', '/v1/webhooks/payments', {
    body: raw,
    headers: { 'atelier-signature': sig },
  })
  expect(res.status).toBe(200)
}

async function generate(token: string, body: Record<string, unknown>) {
  const res = await api.post('/v1/generations', body, token)
  expect(res.status).toBe(202)
  return res.json
}

/** Ends every queued item of `generationId` through the user's actor, as the renderer pool does. */
async function finish(generationId: string, outcome: (key: string) => 'succeeded' | 'failed') {
  const claimed = (await claimDueItems(inst.database.db, 'stats-test', 1000, 60_000)).filter(
    (i) => i.generation_id === generationId,
  )
  for (const item of claimed) {
    const result =
      outcome(item.key) === 'succeeded'
        ? { status: 'succeeded' as const, ...(await media(item.user_id)), exports: {} }
        : { status: 'failed' as const, code: 'render_failed', message: 'scripted failure' }
    const done = await inst.userActors.ask(item.user_id, {
      type: 'generation',
      command: { kind: 'outcome', itemId: item.id, owner: 'stats-test', result },
    })
    expect(done).toMatchObject({ applied: true })
  }
}

async function media(userId: string) {
  const ids = [crypto.randomUUID(), crypto.randomUUID()]
  for (const id of ids)
    await env.sql`insert into media (id, user_id, storage_key, content_type, bytes)
      values (${id}, ${userId}, ${`test/${id}`}, 'image/png', 10)`
  return { imageMediaId: ids[0]!, thumbnailMediaId: ids[1]! }
}

// --- the scripted history ---
await grant(user.user.id, 2000)
await purchase(user.user.id, 500)
// 2 poses × 2 variations: 3 succeed, 1 fails (and is refunded)
const g1 = await generate(user.token, {
  mode: 'library',
  poseIds: [poseA!.id, poseB!.id],
  variations: 2,
})
await finish(g1.id, (key) => (key === `${poseB!.id}-v1` ? 'failed' : 'succeeded'))
// 3 text images, cancelled while queued (each refunded)
const g2 = await generate(user.token, { mode: 'text', prompt: 'a quiet harbour', variations: 3 })
expect((await api.post(`/v1/generations/${g2.id}/cancel`, {}, user.token)).status).toBe(200)
// pose A once more, every item succeeds
const g3 = await generate(user.token, { mode: 'library', poseIds: [poseA!.id], variations: 2 })
await finish(g3.id, () => 'succeeded')
// another user's history must not show
await grant(other.user.id, 300)
const og = await generate(other.token, { mode: 'library', poseIds: [poseA!.id], variations: 1 })
await finish(og.id, () => 'succeeded')
// one left queued (after the last finish: a claim takes every queued item)
await generate(user.token, { mode: 'library', poseIds: [poseB!.id], variations: 1 })
// move some of it back in time: the grant 3 days ago, g3 two days ago, the purchase out of range
await env.sql`update ledger_entries set created_at = now() - interval '3 days'
  where user_id = ${user.user.id} and kind = 'grant'`
await env.sql`update ledger_entries set created_at = now() - interval '40 days'
  where user_id = ${user.user.id} and kind = 'purchase'`
await env.sql`update generations set created_at = now() - interval '2 days' where id = ${g3.id}`
await env.sql`update generation_items set finished_at = now() - interval '2 days'
  where generation_id = ${g3.id}`
await env.sql`update ledger_entries set created_at = now() - interval '2 days'
  where generation_id = ${g3.id}`

/** The figures as the ledger and the items say, computed here row by row. */
async function expected(userId: string, fromDay: string, toDay: string) {
  const from = new Date(`${fromDay}T00:00:00Z`).getTime()
  const to = new Date(`${toDay}T00:00:00Z`).getTime() + DAY
  const inRange = (d: Date | null) => d !== null && d.getTime() >= from && d.getTime() < to
  const entries = (
    await env.sql`select kind, amount::int, created_at from ledger_entries
    where user_id = ${userId}`
  ).filter((e) => inRange(e.created_at))
  const items = (
    await env.sql`select i.status, i.pose_id, i.finished_at, p.name from generation_items i
    left join poses p on p.id = i.pose_id where i.user_id = ${userId}`
  ).filter((i) => inRange(i.finished_at))
  const gens = (
    await env.sql`select status, created_at from generations where user_id = ${userId}`
  ).filter((g) => inRange(g.created_at))
  const sum = (kind: string) =>
    entries.filter((e) => e.kind === kind).reduce((a, e) => a + e.amount, 0)
  const [account] =
    await env.sql`select balance::int from credit_accounts where user_id = ${userId}`
  const balance = account!.balance
  const statuses = ['queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled']
  const byStatus = Object.fromEntries(
    statuses.map((s) => [s, gens.filter((g) => g.status === s).length]),
  )
  const uses = new Map<string, { poseId: string; name: string; uses: number }>()
  for (const i of items.filter((i) => i.status === 'succeeded' && i.pose_id)) {
    const u = uses.get(i.pose_id) ?? { poseId: i.pose_id, name: i.name, uses: 0 }
    u.uses++
    uses.set(i.pose_id, u)
  }
  const daily = []
  for (let t = from; t < to; t += DAY) {
    const date = new Date(t).toISOString().slice(0, 10)
    const sameDay = (d: Date) => d.toISOString().slice(0, 10) === date
    daily.push({
      date,
      images: items.filter((i) => i.status === 'succeeded' && sameDay(i.finished_at)).length,
      credits:
        0 -
        entries
          .filter((e) => (e.kind === 'charge' || e.kind === 'refund') && sameDay(e.created_at))
          .reduce((a, e) => a + e.amount, 0),
    })
  }
  return {
    generations: { total: gens.length, byStatus },
    images: Object.fromEntries(
      ['succeeded', 'failed', 'cancelled'].map((s) => [
        s,
        items.filter((i) => i.status === s).length,
      ]),
    ),
    credits: {
      granted: sum('grant'),
      purchased: sum('purchase'),
      charged: 0 - sum('charge'),
      refunded: sum('refund'),
      balance,
    },
    topPoses: [...uses.values()].sort((a, b) => b.uses - a.uses || (a.name < b.name ? -1 : 1)),
    daily,
  }
}

describe('GET /v1/stats/me', () => {
  it('equals what the ledger and the items say, over the default 30 days', async () => {
    const res = await api.get('/v1/stats/me', user.token)
    expect(res.status).toBe(200)
    expect(res.json).toEqual(await expected(user.user.id, daysAgo(29), today))
    // and the history is the one scripted, not an empty one that matches trivially
    expect(res.json.images).toEqual({ succeeded: 5, failed: 1, cancelled: 3 })
    expect(res.json.generations.total).toBe(4)
    expect(res.json.credits).toMatchObject({ granted: 2000, purchased: 0, refunded: 4 * 30 })
    expect(res.json.topPoses[0]).toEqual({ poseId: poseA!.id, name: poseA!.name, uses: 4 })
    expect(res.json.daily).toHaveLength(30)
    expect(res.json.daily.at(-1).date).toBe(today)
    expect(res.json.daily.at(-3)).toEqual({ date: daysAgo(2), images: 2, credits: 60 })
    expect(res.json.daily.filter((d: any) => d.images === 0 && d.credits === 0)).toHaveLength(28)
  })

  it('answers any range with every day present, zero-filled', async () => {
    for (const [from, to] of [
      [daysAgo(45), daysAgo(35)],
      [daysAgo(2), daysAgo(2)],
      [daysAgo(365), today],
    ] as const) {
      const res = await api.get(`/v1/stats/me?from=${from}&to=${to}`, user.token)
      expect(res.status).toBe(200)
      expect(res.json).toEqual(await expected(user.user.id, from, to))
    }
    const old = await api.get(`/v1/stats/me?from=${daysAgo(45)}&to=${daysAgo(35)}`, user.token)
    expect(old.json.credits.purchased).toBe(500)
    expect(old.json.daily).toHaveLength(11)
  })

  it('refuses a range that is not one with 422 and the parameter', async () => {
    const cases: [string, string][] = [
      ['from=2026-02-30', '/from'],
      ['from=0000-12-31&to=0001-01-01', '/from'], // no year 0 in Postgres
      ['to=0000-12-31', '/to'],
      ['from=2026-1-01', '/from'],
      ['to=2026-12-01T00:00:00Z', '/to'],
      ['from=2026-12-02&to=2026-12-01', '/from'],
      ['from=2025-01-01&to=2026-01-02', '/to'],
      ['to=%00', '/to'],
    ]
    for (const [query, path] of cases) {
      const res = await api.get(`/v1/stats/me?${query}`, user.token)
      expect({ query, status: res.status }).toEqual({ query, status: 422 })
      expect(res.json.error.details[0].path).toBe(path)
    }
    expect((await api.get('/v1/stats/me?from=2025-01-01&to=2026-01-01', user.token)).status).toBe(
      200,
    )
    expect((await api.get('/v1/stats/me')).status).toBe(401)
  })

  it('runs five statements whatever the range (one per figure family)', async () => {
    let queries = 0
    const counter: KyselyPlugin = {
      transformQuery: (args) => {
        queries++
        return args.node
      },
      transformResult: async (args) => args.result,
    }
    const stats = makeStats({ db: inst.readDb.withPlugin(counter) })
    for (const days of [1, 30, 366]) {
      queries = 0
      const range = readRange({ from: daysAgo(days - 1), to: today })
      const figures = await stats.forUser(user.user.id, range)
      expect(figures.daily).toHaveLength(days)
      expect({ days, queries }).toEqual({ days, queries: 5 })
    }
  })
})

describe('GET /v1/admin/stats', () => {
  it('reports the system figures as the tables say, and every live instance', async () => {
    const second = await env.instance(settings)
    const res = await api.get('/v1/admin/stats', admin.token)
    expect(res.status).toBe(200)
    const s = res.json
    const [users] = await env.sql`select count(*)::int as n from users`
    expect(s.users).toBe(users!.n)
    const gens = await env.sql`select status, count(*)::int as n from generations group by status`
    for (const g of gens) expect(s.generations.byStatus[g.status]).toBe(g.n)
    expect(s.generations.total).toBe(gens.reduce((a, g) => a + g.n, 0))
    const [queue] =
      await env.sql`select count(*)::int as n from generation_items where status = 'queued'`
    expect(s.queue.depth).toBe(queue!.n)
    expect(s.queue.depth).toBe(1)
    expect(s.queue.oldestQueuedAgeSeconds).toBeGreaterThanOrEqual(0)
    const [recent] = await env.sql`select count(*)::int as n from generation_items
      where finished_at > now() - interval '15 minutes'`
    expect(s.itemsPerMinute).toBeCloseTo(recent!.n / 15, 2)
    const ledger = await env.sql`select kind, count(*)::int as entries, sum(amount)::int as amount
      from ledger_entries group by kind`
    for (const l of ledger)
      expect(s.ledger[l.kind]).toEqual({ entries: l.entries, amount: l.amount })
    expect(s.ledger.adjustment).toEqual({ entries: 0, amount: 0 })

    expect(s.instance.id).toBe(inst.config.instanceId)
    expect(s.instances.map((i: any) => i.id).sort()).toEqual(
      [inst.config.instanceId, second.config.instanceId].sort(),
    )
    expect(s.actorsLive).toBe(s.instances.reduce((a: number, i: any) => a + i.actorsLive, 0))
    expect(s.actorsLive).toBeGreaterThanOrEqual(1)
    expect(s.websocketConnections).toBe(
      s.instances.reduce((a: number, i: any) => a + i.websocketConnections, 0),
    )

    // an instance that dies without closing leaves the list as soon as its users can be
    // taken over: its record lives as long as an owner's lease (ACTOR_LEASE_MS, 3 s)
    const record = makeRedisKeys(env.redisPrefix).instanceStats(second.config.instanceId)
    const ttl = await second.redis!.ttl(record)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(3)
    // an instance that stops leaves the list
    await second.close()
    const after = (await api.get('/v1/admin/stats', admin.token)).json
    expect(after.instances.map((i: any) => i.id)).toEqual([inst.config.instanceId])
  })
})
