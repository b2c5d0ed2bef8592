import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import { sql } from 'kysely'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/config'
import { claimDueItems } from '../../src/generation/queue/repository'
import { buildInstance } from '../../src/server'
import { silentLog } from '../support/env'
import { client } from '../support/http'
import { openSocket } from '../support/ws'

// PGlite boots and migrates an empty DATA_DIR in ~5 s alone, far more on a shared CPU
setDefaultTimeout(90_000)

/**
 * Statistics in embedded mode: PGlite (the rollup triggers of sql/0011 run
 * there too), the in-memory event log, no Redis: GET /v1/admin/stats has
 * every figure API.md lists, each equal to what the tables say, with the
 * instance itself as the only instance.
 */
const dataDir = mkdtempSync(join(tmpdir(), 'atelier-embedded-stats-'))
const config = loadConfig({
  DATA_DIR: dataDir,
  ADMIN_EMAILS: 'admin@example.com',
  RENDER_CONCURRENCY: '0', // nothing renders by itself: the test decides each outcome
})
const inst = await buildInstance(config, silentLog)
const server = inst.app.listen({ port: 0, hostname: '127.0.0.1' }).server!
afterAll(async () => {
  server.stop(true)
  await inst.close()
  rmSync(dataDir, { recursive: true, force: true })
})
const api = client(inst)
const db = inst.database.db

async function rows<T>(query: ReturnType<typeof sql<T>>) {
  return (await query.execute(db)).rows
}

describe('statistics in embedded mode', () => {
  it('GET /v1/admin/stats reports every figure, as the PGlite tables say', async () => {
    expect(inst.database.kind).toBe('pglite')
    expect(inst.redis).toBeUndefined()
    const admin = await api.register('admin@example.com')
    const user = await api.register()
    const poses = (await api.get('/v1/library/poses?limit=2', user.token)).json.items
    expect(
      (
        await api.post(
          '/v1/admin/credits/grants',
          { userId: user.user.id, amount: 500, reason: 'embedded stats' },
          admin.token,
        )
      ).status,
    ).toBe(201)

    // 2 poses × 2 variations: 3 succeed, 1 fails (refunded)
    const g1 = await api.post(
      '/v1/generations',
      { mode: 'library', poseIds: poses.map((p: { id: string }) => p.id), variations: 2 },
      user.token,
    )
    expect(g1.status).toBe(202)
    const claimed = await claimDueItems(db, 'embedded-stats', 100, 60_000)
    expect(claimed).toHaveLength(4)
    for (const [i, item] of claimed.entries()) {
      const ids = [crypto.randomUUID(), crypto.randomUUID()]
      for (const id of ids)
        await sql`insert into media (id, user_id, storage_key, content_type, bytes)
          values (${id}, ${item.user_id}, ${`test/${id}`}, 'image/png', 10)`.execute(db)
      const result =
        i === 0
          ? { status: 'failed' as const, code: 'render_failed', message: 'scripted failure' }
          : {
              status: 'succeeded' as const,
              imageMediaId: ids[0]!,
              thumbnailMediaId: ids[1]!,
              exports: {},
            }
      expect(
        await inst.userActors.ask(item.user_id, {
          type: 'generation',
          command: { kind: 'outcome', itemId: item.id, owner: 'embedded-stats', result },
        }),
      ).toMatchObject({ applied: true })
    }
    // 2 text images cancelled while queued (refunded); 1 image left queued
    const g2 = await api.post(
      '/v1/generations',
      { mode: 'text', prompt: 'a quiet harbour', variations: 2 },
      user.token,
    )
    expect((await api.post(`/v1/generations/${g2.json.id}/cancel`, {}, user.token)).status).toBe(
      200,
    )
    const g3 = await api.post(
      '/v1/generations',
      { mode: 'library', poseIds: [poses[0].id], variations: 1 },
      user.token,
    )
    expect(g3.status).toBe(202)
    // one live socket, authenticated
    const socket = await openSocket(`ws://127.0.0.1:${server.port}/v1/ws`)
    socket.send({ type: 'auth', token: user.token })
    expect(await socket.next()).toMatchObject({ type: 'ready', userId: user.user.id })

    const res = await api.get('/v1/admin/stats', admin.token)
    expect(res.status).toBe(200)
    const s = res.json

    const [users] = await rows(sql<{ n: number }>`select count(*)::int as n from users`)
    expect(s.users).toBe(users!.n)
    expect(s.users).toBe(2)
    const gens = await rows(
      sql<{
        status: string
        n: number
      }>`select status, count(*)::int as n from generations group by status`,
    )
    expect(s.generations.byStatus).toEqual({
      queued: 0,
      running: 0,
      succeeded: 0,
      partial: 0,
      failed: 0,
      cancelled: 0,
      ...Object.fromEntries(gens.map((g) => [g.status, g.n])),
    })
    expect(s.generations).toEqual({
      total: 3,
      byStatus: { queued: 1, running: 0, succeeded: 0, partial: 1, failed: 0, cancelled: 1 },
    })
    const [queue] = await rows(sql<{ n: number; age: number }>`select count(*)::int as n,
      extract(epoch from now() - min(enqueued_at))::float8 as age
      from generation_items where status = 'queued'`)
    expect(s.queue.depth).toBe(queue!.n)
    expect(s.queue.depth).toBe(1)
    expect(s.queue.oldestQueuedAgeSeconds).toBeGreaterThanOrEqual(0)
    expect(s.queue.oldestQueuedAgeSeconds).toBeLessThanOrEqual(Math.ceil(queue!.age) + 1)
    const [recent] = await rows(sql<{ n: number }>`select count(*)::int as n from generation_items
      where finished_at > now() - interval '15 minutes'`)
    expect(recent!.n).toBe(6)
    expect(s.itemsPerMinute).toBeCloseTo(6 / 15, 2)
    const ledger = await rows(
      sql<{ kind: string; entries: number; amount: number }>`select kind,
        count(*)::int as entries, sum(amount)::int as amount from ledger_entries group by kind`,
    )
    expect(s.ledger).toEqual({
      grant: { entries: 0, amount: 0 },
      purchase: { entries: 0, amount: 0 },
      charge: { entries: 0, amount: 0 },
      refund: { entries: 0, amount: 0 },
      adjustment: { entries: 0, amount: 0 },
      ...Object.fromEntries(ledger.map((l) => [l.kind, { entries: l.entries, amount: l.amount }])),
    })
    // two signups of 1,000 and a grant of 500; 4 + 2 + 1 images at 30; 1 + 2 refunds
    expect(s.ledger.grant).toEqual({ entries: 3, amount: 2500 })
    expect(s.ledger.charge).toEqual({ entries: 3, amount: -210 })
    expect(s.ledger.refund).toEqual({ entries: 3, amount: 90 })

    // the instance itself is the only one: its own live figures, no Redis
    expect(s.instance).toMatchObject({
      id: config.instanceId,
      region: null,
      websocketConnections: 1,
    })
    expect(s.instance.actorsLive).toBeGreaterThanOrEqual(1)
    expect(s.instance.actorsLive).toBe(inst.userActors.stats().live)
    expect(s.instance.inflightRequests).toBeGreaterThanOrEqual(1) // this request
    expect(s.instance.uptimeSeconds).toBeGreaterThanOrEqual(0)
    expect(Date.parse(s.instance.at)).not.toBeNaN()
    expect(s.instances).toEqual([s.instance])
    expect(s.actorsLive).toBe(s.instance.actorsLive)
    expect(s.websocketConnections).toBe(1)

    await socket.close()
    const after = (await api.get('/v1/admin/stats', admin.token)).json
    expect(after.websocketConnections).toBe(0)
    expect((await api.get('/v1/admin/stats', user.token)).status).toBe(403)
  })

  it('GET /v1/stats/me reads the rollups PGlite keeps: the figures of the history above', async () => {
    const login = await api.post('/v1/auth/login', {
      email: 'admin@example.com',
      password: 'correct horse battery',
    })
    const admin = login.json.token
    const [user] = await rows(
      sql<{ id: string; email: string }>`select id, email from users where role = 'user'`,
    )
    const token = await inst.tokens.sign(user!.id, 'user')
    const me = await api.get('/v1/stats/me', token)
    expect(me.status).toBe(200)
    expect(me.json.generations).toEqual({
      total: 3,
      byStatus: { queued: 1, running: 0, succeeded: 0, partial: 1, failed: 0, cancelled: 1 },
    })
    expect(me.json.images).toEqual({ succeeded: 3, failed: 1, cancelled: 2 })
    expect(me.json.credits).toEqual({
      granted: 1500,
      purchased: 0,
      charged: 210,
      refunded: 90,
      balance: 1500 - 210 + 90,
    })
    expect(me.json.topPoses.reduce((a: number, p: { uses: number }) => a + p.uses, 0)).toBe(3)
    const today = new Date().toISOString().slice(0, 10)
    expect(me.json.daily).toHaveLength(30)
    expect(me.json.daily.at(-1)).toEqual({ date: today, images: 3, credits: 120 })
    expect((await api.get('/v1/stats/me', admin)).json.credits.granted).toBe(1000)
  })

  it('GET /v1/admin/actors/:userId names the one local owner, whatever the case of the id', async () => {
    const login = await api.post('/v1/auth/login', {
      email: 'admin@example.com',
      password: 'correct horse battery',
    })
    const [user] = await rows(sql<{ id: string }>`select id from users where role = 'user'`)
    const lower = await api.get(`/v1/admin/actors/${user!.id}`, login.json.token)
    expect(lower.status).toBe(200)
    expect(lower.json).toMatchObject({ userId: user!.id, owner: inst.config.instanceId })
    const upper = await api.get(`/v1/admin/actors/${user!.id.toUpperCase()}`, login.json.token)
    expect(upper.json).toEqual(lower.json)
  })
})
