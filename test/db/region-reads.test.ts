import { afterAll, describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { sampleImage } from '../generation/fixtures'

/**
 * Fly.io with DATABASE_READ_URL: an instance outside the primary region reads
 * generations and media from the replica; the primary reads its own database
 * (its reads follow its writes at once). The "replica" is a database cloned
 * from this file's before any instance wrote, so which rows a read finds
 * shows which database it used.
 */
const env = await useTestEnv()
const mainName = new URL(env.databaseUrl).pathname.slice(1)
const replicaName = `${mainName}_ro`
await env.admin.unsafe(`create database "${replicaName}" template "${mainName}"`)
const replicaUrl = Object.assign(new URL(env.databaseUrl), { pathname: `/${replicaName}` }).href
const replica = postgres(replicaUrl, { max: 1, onnotice: () => {} })
// env's own admin connection is closed by its afterAll, which runs before this file's
const admin = postgres(env.services.postgresUrl, { max: 1, onnotice: () => {} })
afterAll(async () => {
  await replica.end()
  await admin.unsafe(`drop database if exists "${replicaName}" with (force)`)
  await admin.end()
})

const regions = {
  PRIMARY_REGION: 'ams',
  DATABASE_READ_URL: replicaUrl,
  SIGNUP_CREDITS: '100',
  RENDER_CONCURRENCY: '0',
}
const primary = await env.instance({ ...regions, FLY_REGION: 'ams' })
const readRegion = await env.instance({ ...regions, FLY_REGION: 'fra' })
const atPrimary = client(primary)
const atReadRegion = client(readRegion)

describe('reads outside the primary region', () => {
  it('GET /v1/generations[/:id] read the replica there, the primary database in the primary', async () => {
    const { token } = await atPrimary.register()
    const made = await atPrimary.post(
      '/v1/generations',
      { mode: 'text', prompt: 'a dancer leaping over a river', variations: 1 },
      token,
    )
    expect(made.status).toBe(202)
    // the replica never received this generation: the read region does not find it
    expect((await atReadRegion.get(`/v1/generations/${made.json.id}`, token)).status).toBe(404)
    expect((await atReadRegion.get('/v1/generations', token)).json.items).toEqual([])
    expect((await atPrimary.get(`/v1/generations/${made.json.id}`, token)).status).toBe(200)
    expect((await atPrimary.get('/v1/generations', token)).json.items).toHaveLength(1)
  })

  it('GET /v1/media/:id finds a row that only the replica holds', async () => {
    const { token, user } = await atPrimary.register()
    const [row] = await env.sql`select * from users where id = ${user.id}`
    await replica`insert into users (id, email, password_hash, role, created_at)
      values (${row!.id}, ${row!.email}, ${row!.password_hash}, ${row!.role}, ${row!.created_at})`
    const id = crypto.randomUUID()
    const key = `test/${id}.png`
    const bytes = await sampleImage('png')
    await primary.media.put(key, bytes, 'image/png')
    await replica`insert into media (id, user_id, storage_key, content_type, bytes)
      values (${id}, ${user.id}, ${key}, 'image/png', ${bytes.byteLength})`
    const there = await atReadRegion.get(`/v1/media/${id}`, token)
    expect(there.status).toBe(200)
    expect(there.headers.get('content-type')).toBe('image/png')
    expect((await atPrimary.get(`/v1/media/${id}`, token)).status).toBe(404)
  })
})
