import { describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * Fly.io: an instance outside PRIMARY_REGION runs no work that writes. Its
 * renderer pool claims nothing, its sweeper requeues nothing, its actors take
 * no command; the same calls on the primary do write, so each check can fail.
 */
const env = await useTestEnv()
const region = { PRIMARY_REGION: 'ams', SIGNUP_CREDITS: '100', RENDER_CONCURRENCY: '2' }
// the primary accepts but renders nothing by itself, so the queue stays as the tests leave it
const primary = await env.instance({ ...region, FLY_REGION: 'ams', RENDER_CONCURRENCY: '0' })
const replica = await env.instance({ ...region, FLY_REGION: 'fra' })
const api = client(primary)

async function queuedGeneration() {
  const { token } = await api.register()
  const res = await api.post(
    '/v1/generations',
    { mode: 'text', prompt: 'a dancer leaping over a river', variations: 2 },
    token,
  )
  expect(res.status).toBe(202)
  return res.json.id as string
}

const items = (generationId: string) =>
  env.sql<{ status: string; lease_owner: string | null }[]>`
    select status, lease_owner from generation_items where generation_id = ${generationId}`

describe('an instance outside the primary region', () => {
  it('is not the primary, by its one switch', () => {
    expect(primary.config.isPrimaryRegion).toBe(true)
    expect(replica.config.isPrimaryRegion).toBe(false)
  })

  it('answers a replayed write through the usual hooks: counted as ended, so drain never waits for it', async () => {
    const res = await client(replica).post('/v1/auth/login', { email: 'a@b.c', password: 'x' })
    expect(res.status).toBe(409)
    expect(res.headers.get('fly-replay')).toBe('region=ams')
    expect(res.headers.get('x-request-id')).toBeTruthy()
    await waitFor(() => replica.lifecycle.inflight === 0, 2000, 'the replayed request to end')
  })

  it('claims no queued item, though it has render slots', async () => {
    const generationId = await queuedGeneration()
    await replica.pool.wake() // resolves after a full claiming round
    expect((await items(generationId)).map((i) => i.status)).toEqual(['queued', 'queued'])
  })

  it('requeues no item whose lease expired; the primary does', async () => {
    const generationId = await queuedGeneration()
    await env.sql`update generation_items set status = 'running', lease_owner = 'gone',
      lease_expires_at = now() - interval '1 minute' where generation_id = ${generationId}`
    await replica.sweeper.sweep()
    expect((await items(generationId)).map((i) => i.lease_owner)).toEqual(['gone', 'gone'])
    await primary.sweeper.sweep()
    expect((await items(generationId)).map((i) => i.status)).toEqual(['queued', 'queued'])
  })

  it('refuses an actor command with 503 instead of writing', async () => {
    const { user } = await api.register()
    const grant = replica.credits.apply(user.id, {
      kind: 'grant',
      amount: 5,
      reason: 'test',
      key: 'read-region-grant',
    })
    await expect(grant).rejects.toMatchObject({ code: 'unavailable', status: 503 })
    const [row] = await env.sql`select balance from credit_accounts where user_id = ${user.id}`
    expect(Number(row!.balance)).toBe(100)
  })

  it('applies no migration at start (MIGRATE_ON_START); the primary does', async () => {
    // each on an empty database of its own: afterwards, does the migrations table exist?
    const migrated = async (region: string) => {
      const name = `${new URL(env.databaseUrl).pathname.slice(1)}_empty_${region}`
      await env.admin.unsafe(`create database "${name}"`)
      const url = Object.assign(new URL(env.databaseUrl), { pathname: `/${name}` }).href
      const probe = postgres(url, { max: 1, onnotice: () => {} })
      try {
        const inst = await env.instance({
          PRIMARY_REGION: 'ams',
          FLY_REGION: region,
          DATABASE_URL: url,
          MIGRATE_ON_START: 'true',
        })
        await inst.close()
        const [row] = await probe`select to_regclass('schema_migrations') is not null as present`
        return row!.present as boolean
      } finally {
        await probe.end()
        await env.admin.unsafe(`drop database if exists "${name}" with (force)`)
      }
    }
    expect(await migrated('fra')).toBe(false)
    expect(await migrated('ams')).toBe(true)
  })
})
