import { describe, expect, it } from 'bun:test'
import { ensureGroup } from '../../src/actors/streams'
import { makeRedisKeys } from '../../src/redis/keys'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * Cluster ownership between two instances of one process (real Postgres and
 * Redis; the multi-process cases are in cluster-processes.test.ts): one
 * owner per user, the same answer from every instance, forwarding, a
 * redelivered inbox entry with one effect, and a fenced batch re-routed.
 */
const env = await useTestEnv()
const ADMIN = 'cluster-admin@example.com'
const a = await env.instance({ ADMIN_EMAILS: ADMIN, INSTANCE_ID: 'inproc-a' })
const b = await env.instance({ ADMIN_EMAILS: ADMIN, INSTANCE_ID: 'inproc-b' })
const keys = makeRedisKeys(env.redisPrefix)
const admin = await client(a).register(ADMIN)

function grant(inst: Instance, userId: string, amount: number, key: string = crypto.randomUUID()) {
  return inst.credits.apply(userId, { kind: 'grant', amount, reason: 'cluster test', key })
}

async function balance(userId: string) {
  const [row] = await env.sql`select balance::int from credit_accounts where user_id = ${userId}`
  return row?.balance ?? 0
}

async function metric(inst: Instance, name: string) {
  const text = await inst.metrics.registry.metrics()
  let sum = 0
  for (const line of text.split('\n'))
    if (line.startsWith(name) && !line.startsWith('#')) sum += Number(line.split(' ').at(-1))
  return sum
}

describe('cluster ownership', () => {
  it('answers who owns a user the same on every instance, 404 when nobody does', async () => {
    const { user } = await client(a).register()
    const before = await client(b).get(`/v1/admin/actors/${user.id}`, admin.token)
    expect(before.status).toBe(404)
    expect(before.json.error.code).toBe('not_found')
    await grant(a, user.id, 10)
    const fromA = await client(a).get(`/v1/admin/actors/${user.id}`, admin.token)
    const fromB = await client(b).get(`/v1/admin/actors/${user.id}`, admin.token)
    expect(fromA.status).toBe(200)
    expect(fromA.json).toEqual(fromB.json)
    expect(fromA.json).toMatchObject({ userId: user.id, owner: 'inproc-a', epoch: 1 })
    expect(Number.isNaN(Date.parse(fromA.json.since))).toBe(false)
    // a UUID in capitals names the same user
    const upper = await client(a).get(`/v1/admin/actors/${user.id.toUpperCase()}`, admin.token)
    expect(upper.json).toEqual(fromA.json)
    expect((await client(a).get('/v1/admin/actors/not-a-uuid', admin.token)).status).toBe(404)
    expect((await client(a).get(`/v1/admin/actors/${user.id}`, user.id)).status).toBe(401)
  })

  it('forwards a non-owner’s commands to the owner, which batches them with its own', async () => {
    const { user } = await client(a).register()
    await grant(a, user.id, 1000)
    const charges = Array.from({ length: 200 }, (_, i) =>
      (i % 2 ? a : b).credits.apply(user.id, {
        kind: 'charge',
        amount: 3,
        reason: 'hot',
        key: `hot-${i}`,
      }),
    )
    await Promise.all(charges)
    expect(await balance(user.id)).toBe(1000 - 600)
    expect(await metric(b, 'user_actor_forwarded_total{result="answered"')).toBeGreaterThanOrEqual(
      100,
    )
    // every command ran on a: b ran none of this user's batches
    expect(b.userActors.stats().ownedActors).toBe(0)
    expect(a.userActors.stats().meanBatchSize).toBeGreaterThan(1)
  })

  it('has one effect for an inbox entry delivered twice (a redelivery, a takeover replay)', async () => {
    const { user } = await client(a).register()
    await grant(a, user.id, 1)
    const probe = `probe-${crypto.randomUUID().slice(0, 8)}`
    const replies = keys.instanceReplies(probe)
    await ensureGroup(a.redis!, replies)
    const command = JSON.stringify({
      type: 'ledger',
      command: { kind: 'grant', amount: 7, reason: 'redelivered', key: 'dup-key' },
    })
    const entry = (id: string) =>
      JSON.stringify({
        id,
        from: probe,
        key: user.id,
        epoch: 1,
        deadline: Date.now() + 10_000,
        hops: 0,
        command,
      })
    // the same command twice, as a redelivery or a takeover would hand it over again
    // (once alone, once inside an entry of several, as a sender groups one turn's commands)
    const inbox = keys.instanceInbox('inproc-a')
    await a.redis!.sendCommand(['XADD', inbox, '*', 'e', entry('first')])
    await a.redis!.sendCommand(['XADD', inbox, '*', 'e', `[${entry('again')}]`])
    let got: { id: string; outcome: string }[] = []
    await waitFor(
      async () => {
        const rows = (await a.redis!.sendCommand(['XRANGE', replies, '-', '+'])) as [
          string,
          string[],
        ][]
        // an entry holds one reply, or the replies of one turn as an array
        got = rows.flatMap(([, f]) => [JSON.parse(f[1]!)].flat())
        return got.length === 2
      },
      5000,
      'two replies on the probe reply stream',
    )
    const outcomes = got.map((r) => JSON.parse(r.outcome))
    expect(outcomes.map((o) => o.ok)).toEqual([true, true])
    expect(outcomes.map((o) => o.value.replayed).sort()).toEqual([false, true])
    expect(outcomes[0].value.entry.id).toBe(outcomes[1].value.entry.id)
    const rows = await env.sql`
      select count(*)::int as n from ledger_entries where user_id = ${user.id} and idempotency_key = 'dup-key'`
    expect(rows[0]!.n).toBe(1)
    expect(await balance(user.id)).toBe(8)
  })

  it('re-routes a batch its stale epoch refused to the new owner, applying it once', async () => {
    const { user } = await client(a).register()
    await grant(a, user.id, 100)
    // b took the user over while a was paused (as a claim over a dead owner does)
    await env.sql`update actor_owners set owner = 'inproc-b', epoch = epoch + 1 where user_id = ${user.id}`
    const fencedBefore = await metric(a, 'user_actor_fenced_batches_total')
    // a still believes it owns the user: its batch is refused by the epoch and forwarded to b
    const result = await grant(a, user.id, 5, 'after-takeover')
    expect(result.balance).toBe(105)
    expect(await metric(a, 'user_actor_fenced_batches_total')).toBe(fencedBefore + 1)
    // and from now on a forwards at once
    await grant(a, user.id, 5)
    expect(await metric(a, 'user_actor_fenced_batches_total')).toBe(fencedBefore + 1)
    expect(await balance(user.id)).toBe(110)
    const owner = await client(a).get(`/v1/admin/actors/${user.id}`, admin.token)
    expect(owner.json).toMatchObject({ owner: 'inproc-b', epoch: 2 })
  })

  it('processes at start what a previous process with its instance id read and never acknowledged', async () => {
    const { user } = await client(a).register()
    const id = 'inproc-restarted'
    const inbox = keys.instanceInbox(id)
    const probe = `probe-${crypto.randomUUID().slice(0, 8)}`
    await ensureGroup(a.redis!, keys.instanceReplies(probe))
    const envelope = JSON.stringify({
      id: 'left-behind',
      from: probe,
      key: user.id,
      epoch: 0,
      deadline: Date.now() + 30_000,
      hops: 0,
      command: JSON.stringify({
        type: 'ledger',
        command: { kind: 'grant', amount: 9, reason: 'left behind', key: 'left-behind' },
      }),
    })
    // the previous process: its group, an entry it read (pending to it), then it died
    await a.redis!.sendCommand(['XGROUP', 'CREATE', inbox, 'actors', '0', 'MKSTREAM'])
    await a.redis!.sendCommand(['XADD', inbox, '*', 'e', envelope])
    await a.redis!.sendCommand(['XREADGROUP', 'GROUP', 'actors', id, 'STREAMS', inbox, '>'])
    const again = await env.instance({ INSTANCE_ID: id })
    const replyIds = async () => {
      const rows = (await a.redis!.sendCommand([
        'XRANGE',
        keys.instanceReplies(probe),
        '-',
        '+',
      ])) as [string, string[]][]
      return rows.flatMap(([, f]) => [JSON.parse(f[1]!)].flat()).map((r) => r.id as string)
    }
    await waitFor(async () => (await replyIds()).length > 0, 5000, 'the pending entry answered')
    expect(await replyIds()).toEqual(['left-behind'])
    expect(await balance(user.id)).toBe(9)
    expect(again.userActors.stats().ownedActors).toBe(1)
  })

  it('rebalances on DELETE from any instance: the owner gives the user up, the next command claims it where it lands', async () => {
    const { user } = await client(a).register()
    await grant(a, user.id, 10)
    const path = `/v1/admin/actors/${user.id}`
    const before = (await client(a).get(path, admin.token)).json
    // asked of b, which does not own the user: b asks a through its inbox
    const released = await client(b).call('DELETE', path, { token: admin.token })
    expect(released.status).toBe(200)
    expect(released.json).toEqual(before)
    expect((await client(a).get(path, admin.token)).status).toBe(404)
    // the next command claims it where it lands, local-first, with a higher epoch
    expect((await grant(b, user.id, 5)).balance).toBe(15)
    expect((await client(a).get(path, admin.token)).json).toMatchObject({
      owner: 'inproc-b',
      epoch: before.epoch + 1,
    })
    // and a, the former owner, forwards to it
    expect((await grant(a, user.id, 1)).balance).toBe(16)
    // released again, named by its UUID in capitals; then nobody owns it: 404, the API's shape
    const upper = `/v1/admin/actors/${user.id.toUpperCase()}`
    const again = await client(b).call('DELETE', upper, { token: admin.token })
    expect(again.json).toMatchObject({
      userId: user.id,
      owner: 'inproc-b',
      epoch: before.epoch + 1,
    })
    const none = await client(a).call('DELETE', path, { token: admin.token })
    expect(none.status).toBe(404)
    expect(none.json.error.code).toBe('not_found')
    // admins only (the admin guard), and a UUID (anything else names nobody: 404)
    const { token } = await client(a).register()
    expect((await client(a).call('DELETE', path, { token })).status).toBe(403)
    expect(
      (await client(a).call('DELETE', '/v1/admin/actors/not-a-uuid', { token: admin.token }))
        .status,
    ).toBe(404)
  })

  it('describes the rebalance in the OpenAPI document', async () => {
    const doc = (await client(a).get('/openapi/json')).json
    const op = doc.paths['/v1/admin/actors/{userId}'].delete
    expect(op.summary).toMatch(/rebalance/i)
    expect(Object.keys(op.responses).sort()).toEqual([
      '200',
      '400',
      '401',
      '403',
      '404',
      '413',
      '415',
      '503',
    ])
  })

  it('reports owned actors, forwards per second and takeovers per instance in admin stats', async () => {
    const stats = await client(b).get('/v1/admin/stats', admin.token)
    expect(stats.status).toBe(200)
    type Figures = { id: string; ownedActors: number; forwardsPerSecond: number; takeovers: number }
    const byId = Object.fromEntries((stats.json.instances as Figures[]).map((i) => [i.id, i]))
    expect(byId['inproc-b']).toMatchObject({ takeovers: 0 })
    expect(byId['inproc-b']!.forwardsPerSecond).toBeGreaterThan(0)
    expect(typeof byId['inproc-a']!.ownedActors).toBe('number')
  })

  it("rebalances a dead owner's user: taken over with a higher epoch, then released", async () => {
    const { user } = await client(a).register()
    await grant(a, user.id, 10)
    // the owner is an instance that died: no heartbeat, its claim's lease long passed
    await env.sql`update actor_owners set owner = 'inproc-dead', epoch = epoch + 5,
      lease_until = now() - interval '1 minute' where user_id = ${user.id}`
    const path = `/v1/admin/actors/${user.id}`
    const before = (await client(b).get(path, admin.token)).json
    expect(before.owner).toBe('inproc-dead')
    // right after a start an instance takes nobody over until its own beats have held for a
    // lease (it may be back from a Redis outage): 503 with Retry-After meanwhile, as a client retries
    let released = await client(b).call('DELETE', path, { token: admin.token })
    await waitFor(
      async () => {
        if (released.status !== 503) return true
        released = await client(b).call('DELETE', path, { token: admin.token })
        return false
      },
      10_000,
      'the rebalance to answer other than 503 once the cluster view settled',
    )
    expect([released.status, released.json]).toEqual([200, before])
    expect((await client(b).get(path, admin.token)).status).toBe(404)
    // the takeover raised the epoch once and the next claim raises it again: the dead owner's
    // epoch holds nowhere, so it could not write even if it was only paused
    const [row] = await env.sql`select epoch::int from actor_owners where user_id = ${user.id}`
    expect(row!.epoch).toBe(before.epoch + 1)
    expect((await grant(b, user.id, 5)).balance).toBe(15)
    expect((await client(b).get(path, admin.token)).json.epoch).toBe(before.epoch + 2)
  }, 20_000)
})
