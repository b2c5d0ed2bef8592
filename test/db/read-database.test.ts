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
})
