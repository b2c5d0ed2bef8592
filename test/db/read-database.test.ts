import { afterAll, describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

/**
 * DATABASE_READ_URL: library and stats reads go to a second kysely instance,
 * everything else to the primary. The "replica" here is another database
 * cloned from this file's, so a row only it holds shows which one a read used.
 */
const env = await useTestEnv()
const replicaName = `${new URL(env.databaseUrl).pathname.slice(1)}_replica`
await env.admin.unsafe(
  `create database "${replicaName}" template "${new URL(env.databaseUrl).pathname.slice(1)}"`,
)
const replicaUrl = (() => {
  const u = new URL(env.databaseUrl)
  u.pathname = `/${replicaName}`
  return u.toString()
})()
const replica = postgres(replicaUrl, { max: 1, onnotice: () => {} })
// env's own admin connection is closed by its afterAll, which runs before this file's
const admin = postgres(env.services.postgresUrl, { max: 1, onnotice: () => {} })
const inst = await env.instance({
  DATABASE_READ_URL: replicaUrl,
  ADMIN_EMAILS: 'admin@example.com',
})
const api = client(inst)

afterAll(async () => {
  await replica.end()
  await admin.unsafe(`drop database if exists "${replicaName}" with (force)`)
  await admin.end()
})

describe('DATABASE_READ_URL', () => {
  it('serves library reads from the read database and writes to the primary', async () => {
    const [row] = await replica`insert into poses (id, name, category_id, difficulty, keypoints)
      select gen_random_uuid(), 'Only on the replica', 'standing', 'easy', keypoints
      from poses limit 1 returning id`
    const id = row!.id as string
    const listed = await api.get('/v1/library/poses?q=only%20on%20the%20replica')
    expect(listed.json.items.map((p: any) => p.id)).toEqual([id])
    expect((await api.get(`/v1/library/poses/${id}`)).status).toBe(200)
    // a generation checks its poses on the primary, where this one does not exist
    const admin = await api.register('admin@example.com')
    const made = await api.post(
      '/v1/admin/library/poses',
      {
        name: 'Only on the primary',
        category: 'standing',
        tags: [],
        difficulty: 'easy',
        keypoints: Array.from({ length: 17 }, () => [0.5, 0.5, 2]),
      },
      admin.token,
    )
    expect(made.status).toBe(201)
    const [onPrimary] = await env.sql`select name from poses where id = ${made.json.id}`
    expect(onPrimary?.name).toBe('Only on the primary')
    expect((await replica`select 1 from poses where id = ${made.json.id}`).length).toBe(0)
    const health = await api.get('/health')
    expect(health.json.checks['postgres-read'].ok).toBe(true)
  })
  it('serves GET /v1/stats/me and the database figures of /v1/admin/stats from the read database', async () => {
    const user = await api.register()
    // the replica alone holds this user's history (and the rollup its triggers keep there)
    await replica`insert into users (id, email, password_hash, role)
      values (${user.user.id}, ${user.user.email}, 'x', 'user')`
    await replica`select ledger_apply(${user.user.id}, ${replica.json([
      { kind: 'grant', amount: 777, id: crypto.randomUUID(), reason: 'replica only', key: 'r1' },
    ])})`
    const stats = await api.get('/v1/stats/me', user.token)
    expect(stats.status).toBe(200)
    expect(stats.json.credits).toMatchObject({ granted: 777, balance: 777 })
    const [primary] = await env.sql`select count(*)::int as n from ledger_entries
      where user_id = ${user.user.id}`
    expect(primary!.n).toBe(0)

    const admin = await api.post('/v1/auth/login', {
      email: 'admin@example.com',
      password: 'correct horse battery',
    })
    const system = await api.get('/v1/admin/stats', admin.json.token)
    expect(system.status).toBe(200)
    const [onReplica] = await replica`select count(*)::int as n from users`
    const [onPrimary] = await env.sql`select count(*)::int as n from users`
    expect(onReplica!.n).not.toBe(onPrimary!.n)
    expect(system.json.users).toBe(onReplica!.n)
    expect(system.json.ledger.grant.amount).toBe(777)
  })
})
