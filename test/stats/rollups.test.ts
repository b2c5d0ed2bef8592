import { describe, expect, it, setDefaultTimeout } from 'bun:test'
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { makeDatabase } from '../../src/db/database'
import { migrate, SQL_DIR } from '../../src/db/migrator'
import { claimDueItems } from '../../src/generation/queue/repository'
import { signPayload } from '../../src/ledger/webhook-signature'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

setDefaultTimeout(60_000)

/**
 * The daily rollups of sql/0011 (kept by statement triggers) against a
 * recomputation from the source rows, after a history written concurrently:
 * two instances, each with its own user actors (so one user's commands commit
 * from two processes' pools at once), grants and purchases racing
 * generations, cancels, item outcomes in parallel, then statements that move
 * rows between days, delete a generation and delete a user.
 */
const WEBHOOK_SECRET = 'rollups-webhook-secret-0123456789'
const env = await useTestEnv()
const settings = {
  ADMIN_EMAILS: 'admin@example.com',
  RENDER_CONCURRENCY: '0', // the test ends every item itself
  PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
}
const a = await env.instance(settings)
const b = await env.instance(settings)
const apis = [client(a), client(b)]
const api = (i: number) => apis[i % 2]!
const admin = await apis[0]!.register('admin@example.com')
const users = await Promise.all(Array.from({ length: 6 }, (_, i) => api(i).register()))
const poses = (await env.sql`select id from poses order by name limit 6`).map((p) => p.id)

/** Rollup rows, zero rows left out (a rollup keeps a day's row when it goes back to 0). */
const ROLLUPS = {
  ledger: `select user_id, to_char(day, 'YYYY-MM-DD') as day, kind, entries::int, amount::int
    from stats_ledger_days where entries <> 0 or amount <> 0`,
  items: `select user_id, to_char(day, 'YYYY-MM-DD') as day, status, items::int
    from stats_item_days where items <> 0`,
  poses: `select user_id, to_char(day, 'YYYY-MM-DD') as day, pose_id, uses::int
    from stats_pose_days where uses <> 0`,
  generations: `select user_id, to_char(day, 'YYYY-MM-DD') as day, status, generations::int
    from stats_generation_days where generations <> 0`,
}
/** The same figures recomputed from the source rows. */
const RECOMPUTED = {
  ledger: `select user_id, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as day, kind,
      count(*)::int as entries, sum(amount)::int as amount
    from ledger_entries group by 1, 2, 3`,
  items: `select user_id, to_char(finished_at at time zone 'UTC', 'YYYY-MM-DD') as day, status,
      count(*)::int as items
    from generation_items where finished_at is not null group by 1, 2, 3`,
  poses: `select user_id, to_char(finished_at at time zone 'UTC', 'YYYY-MM-DD') as day, pose_id,
      count(*)::int as uses
    from generation_items
    where finished_at is not null and status = 'succeeded' and pose_id is not null
    group by 1, 2, 3`,
  generations: `select user_id, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as day, status,
      count(*)::int as generations
    from generations group by 1, 2, 3`,
}

const sorted = (rows: Record<string, unknown>[]) =>
  rows.map((r) => ({ ...r })).sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1))

async function expectRollupsExact() {
  for (const name of Object.keys(ROLLUPS) as (keyof typeof ROLLUPS)[]) {
    const [rollup, source] = await Promise.all([
      env.sql.unsafe(ROLLUPS[name]),
      env.sql.unsafe(RECOMPUTED[name]),
    ])
    expect({ name, rows: sorted(rollup) }).toEqual({ name, rows: sorted(source) })
  }
}

async function purchase(i: number, userId: string, credits: number) {
  const raw = JSON.stringify({
    id: `evt_${crypto.randomUUID()}`,
    type: 'credits.purchased',
    userId,
    credits,
  })
  const sig = signPayload(raw, WEBHOOK_SECRET, Math.floor(Date.now() / 1000))
  const res = await api(i).call('POST', '/v1/webhooks/payments', {
    body: raw,
    headers: { 'atelier-signature': sig },
  })
  expect(res.status).toBe(200)
}

async function media(userId: string) {
  const ids = [crypto.randomUUID(), crypto.randomUUID()]
  for (const id of ids)
    await env.sql`insert into media (id, user_id, storage_key, content_type, bytes)
      values (${id}, ${userId}, ${`test/${id}`}, 'image/png', 10)`
  return { imageMediaId: ids[0]!, thumbnailMediaId: ids[1]! }
}

describe('stats rollups', () => {
  it('equal a recomputation from the source rows after a concurrent history', async () => {
    // enough for every generation below (30 + 60 + 90), so none is refused whatever wins a race
    await Promise.all(
      users.map(async (u, i) => {
        const res = await api(i).post(
          '/v1/admin/credits/grants',
          { userId: u.user.id, amount: 300, reason: 'rollups test' },
          admin.token,
        )
        expect(res.status).toBe(201)
      }),
    )
    // credits and generations racing each other, on both instances
    const generationIds: string[] = []
    await Promise.all(
      users.flatMap((u, i) => [
        ...[0, 1, 2].map(async (k) => {
          const res = await api(i + k).post(
            '/v1/admin/credits/grants',
            { userId: u.user.id, amount: 100 + k, reason: 'rollups test' },
            admin.token,
          )
          expect(res.status).toBe(201)
        }),
        purchase(i + 1, u.user.id, 250),
        ...[0, 1, 2].map(async (k) => {
          const res = await api(i + k + 1).post(
            '/v1/generations',
            { mode: 'library', poseIds: [poses[(i + k) % poses.length]!], variations: 1 + k },
            u.token,
          )
          expect(res.status).toBe(202)
          generationIds.push(res.json.id)
        }),
      ]),
    )
    // every user's first generation is cancelled while queued (refunds), in parallel
    const cancelled = await env.sql`select distinct on (user_id) id, user_id from generations
      order by user_id, created_at`
    await Promise.all(
      cancelled.map(async (g, i) => {
        const token = users.find((u) => u.user.id === g.user_id)!.token
        expect((await api(i).post(`/v1/generations/${g.id}/cancel`, {}, token)).status).toBe(200)
      }),
    )
    // the rest end in parallel through both instances' actors: one in four fails (refunded)
    const claimed = await claimDueItems(a.database.db, 'rollups-test', 1000, 60_000)
    expect(claimed.length).toBeGreaterThan(10)
    await Promise.all(
      claimed.map(async (item, i) => {
        const result =
          i % 4 === 0
            ? { status: 'failed' as const, code: 'render_failed', message: 'scripted failure' }
            : { status: 'succeeded' as const, ...(await media(item.user_id)), exports: {} }
        const inst = i % 2 ? b : a
        const done = await inst.userActors.ask(item.user_id, {
          type: 'generation',
          command: { kind: 'outcome', itemId: item.id, owner: 'rollups-test', result },
        })
        expect(done).toMatchObject({ applied: true })
      }),
    )
    // one more generation per user stays queued
    await Promise.all(
      users.map(async (u, i) => {
        const res = await api(i).post(
          '/v1/generations',
          { mode: 'library', poseIds: [poses[i]!], variations: 2 },
          u.token,
        )
        expect(res.status).toBe(202)
      }),
    )
    await expectRollupsExact()
    const [counts] = await env.sql`select
      (select count(*)::int from ledger_entries) as entries,
      (select count(*)::int from generation_items where status = 'succeeded') as succeeded,
      (select count(*)::int from generation_items where status = 'failed') as failed,
      (select count(*)::int from generation_items where status = 'cancelled') as cancelled`
    // the history is the one scripted, not an empty one that matches trivially
    expect(counts!.cancelled).toBeGreaterThanOrEqual(6)
    expect(counts!.succeeded).toBeGreaterThan(10)
    expect(counts!.failed).toBeGreaterThan(2)
    expect(counts!.entries).toBeGreaterThan(6 * 7)

    // statements of many rows and users that move rows between days and change outcomes
    await env.sql`update ledger_entries set created_at = created_at - (seq % 3) * interval '1 day'`
    await env.sql`update generation_items set finished_at = finished_at - interval '2 days'
      where variation = 1 and finished_at is not null`
    await env.sql`update generation_items set status = 'failed'
      where status = 'succeeded' and variation = 2`
    await env.sql`update generations set created_at = created_at - interval '5 days',
      status = 'partial' where status = 'succeeded' and total_items = 3`
    // a generation deleted (its items go by cascade), and a whole user
    await env.sql`delete from generations where id = ${generationIds[0]!}`
    await env.sql`delete from users where id = ${users[5]!.user.id}`
    await expectRollupsExact()
    const [left] = await env.sql`select count(*)::int as n from stats_ledger_days
      where user_id = ${users[5]!.user.id}`
    expect(left!.n).toBe(0)
  })

  it('are backfilled by sql/0011 from the rows written before it, each counted once', async () => {
    // a database migrated up to 0010 only, with a history, then migrated to the end
    const name = `${env.dbName}_backfill`
    await env.admin.unsafe(`create database "${name}"`)
    const url = new URL(env.databaseUrl)
    url.pathname = `/${name}`
    const before = mkdtempSync(join(tmpdir(), 'atelier-sql-'))
    for (const f of readdirSync(SQL_DIR).filter((f) => f < '0011'))
      copyFileSync(join(SQL_DIR, f), join(before, f))
    const database = await makeDatabase({
      url: url.toString(),
      dataDir: '',
      poolMax: 2,
      statementTimeoutMs: 30_000,
    })
    const other = postgres(url.toString(), { max: 1, onnotice: () => {} })
    try {
      expect(await migrate(database.migrationTarget, before)).toContain('0010_uploads.sql')
      const ids = [crypto.randomUUID(), crypto.randomUUID()]
      for (const [i, id] of ids.entries()) {
        await other`insert into users (id, email, password_hash, role)
          values (${id}, ${`backfill-${i}@example.com`}, 'x', 'user')`
        await other`select ledger_apply(${id}, ${other.json([
          { kind: 'grant', amount: 500, id: crypto.randomUUID(), reason: 'b', key: `g${i}` },
          { kind: 'charge', amount: 60, id: crypto.randomUUID(), reason: 'b', key: `c${i}` },
          { kind: 'refund', amount: 30, id: crypto.randomUUID(), reason: 'b', key: `r${i}` },
        ])})`
        const [charge] = await other`select id from ledger_entries
          where user_id = ${id} and kind = 'charge'`
        const generationId = crypto.randomUUID()
        await other`insert into generations (id, user_id, status, mode, request, total_items,
            price_per_item, credits_charged, charge_entry_id, created_at)
          values (${generationId}, ${id}, 'partial', 'library', '{}', 2, 30, 60, ${charge!.id},
            now() - ${i} * interval '3 days')`
        await other`insert into generation_items (id, generation_id, user_id, key, pose_id,
            variation, status, finished_at)
          select gen_random_uuid(), ${generationId}, ${id}, 'k' || v, p.id, v,
            case when v = 0 then 'succeeded' else 'failed' end, now() - v * interval '1 day'
          from generate_series(0, 1) v, (select id from poses order by name limit 1) p`
      }
      expect(await migrate(database.migrationTarget)).toEqual(
        expect.arrayContaining(['0011_stats_rollups.sql', '0012_stats_source_indexes.sql']),
      )
      for (const table of Object.keys(ROLLUPS) as (keyof typeof ROLLUPS)[]) {
        const [rollup, source] = await Promise.all([
          other.unsafe(ROLLUPS[table]),
          other.unsafe(RECOMPUTED[table]),
        ])
        expect(source.length).toBeGreaterThan(0)
        expect({ table, rows: sorted(rollup) }).toEqual({ table, rows: sorted(source) })
      }
    } finally {
      await other.end()
      await database.close()
      await env.admin.unsafe(`drop database if exists "${name}" with (force)`)
      rmSync(before, { recursive: true, force: true })
    }
  })
})
