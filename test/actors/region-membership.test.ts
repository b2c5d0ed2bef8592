import { describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { handInbox, ledgerEnvelope } from '../support/inbox'
import { waitFor } from '../support/wait'

/**
 * Fly.io: an instance outside PRIMARY_REGION never announces itself
 * (src/actors/membership.ts, `announce`; cluster.ts passes `canOwn`): no
 * heartbeat key, never in the members set, so no primary ever forwards a
 * command to it or hands a user to it, and it owns no actor. Two primaries
 * and a read region, in one process (the same wiring as production).
 */
const env = await useTestEnv()
const LEASE_MS = 600
const region = (id: string, flyRegion: string) => ({
  INSTANCE_ID: id,
  PRIMARY_REGION: 'ams',
  FLY_REGION: flyRegion,
  ACTOR_LEASE_MS: String(LEASE_MS),
})
const primary = await env.instance(region('ams-1', 'ams'))
const other = await env.instance(region('ams-2', 'ams'))
const reader = await env.instance(region('fra-1', 'fra'))
const redis = primary.redis!
const hand = handInbox(env, redis)
const keys = hand.keys

describe('a read region in the cluster', () => {
  it('never announces itself: no heartbeat and not a member, beat after beat', async () => {
    // the primaries are seen; then a dozen of everyone's beats (every third of a lease)
    await waitFor(
      async () => {
        const members = await redis.zRange(keys.actorMembers(), 0, -1)
        return members.includes('ams-1') && members.includes('ams-2')
      },
      5000,
      'both primaries to be members',
    )
    const until = performance.now() + 4 * LEASE_MS
    while (performance.now() < until) {
      expect(await redis.exists(keys.actorHeartbeat('fra-1'))).toBe(0)
      expect((await redis.zRange(keys.actorMembers(), 0, -1)).sort()).toEqual(['ams-1', 'ams-2'])
      expect(await redis.exists(keys.actorHeartbeat('ams-1'))).toBe(1)
      await Bun.sleep(LEASE_MS / 6)
    }
  })

  it('owns no actor: a command forwarded to it is answered "moved", and nothing is claimed', async () => {
    const { user } = await client(primary).register()
    const probe = await hand.probe()
    const envelope = ledgerEnvelope({
      id: 'to-the-reader',
      from: probe,
      key: user.id,
      command: { kind: 'grant', amount: 5, reason: 'misrouted', key: 'misrouted' },
    })
    // as a sender would, had it ever been told the reader is alive
    await hand.send('fra-1', envelope)
    const replies = await hand.repliesTo<{ id: string; moved?: boolean }>(probe)
    expect(replies).toEqual([{ id: 'to-the-reader', moved: true }])
    expect((await env.sql`select 1 from actor_owners where user_id = ${user.id}`).length).toBe(0)
    // the primaries own what they are asked about; the reader none of it
    await other.credits.apply(user.id, { kind: 'grant', amount: 1, reason: 'x', key: 'here' })
    await primary.credits.apply(user.id, { kind: 'grant', amount: 1, reason: 'x', key: 'there' })
    const owners = await env.sql`select distinct owner from actor_owners`
    expect(owners.map((r) => r.owner)).toEqual(['ams-2'])
    expect(reader.userActors.stats().ownedActors).toBe(0)
  })

  it('is never handed a user when a primary drains: the other primary claims them all', async () => {
    const users = await Promise.all(Array.from({ length: 6 }, () => client(primary).register()))
    const grant = (userId: string, key: string) =>
      primary.credits.apply(userId, { kind: 'grant', amount: 1, reason: 'x', key })
    await Promise.all(users.map(({ user }) => grant(user.id, 'first')))
    // commands in flight across the hand-off, then commands after it: the draining primary
    // sends each user to a live member (the one other primary), which claims it
    const inFlight = users.map(({ user }) => grant(user.id, 'in-flight'))
    await primary.userActors.handOff()
    const after = await Promise.all(users.map(({ user }) => grant(user.id, 'after')))
    expect((await Promise.all(inFlight)).every((r) => r.balance >= 2)).toBe(true)
    expect(after.map((r) => r.balance)).toEqual(Array(6).fill(3))
    const ids = users.map(({ user }) => user.id)
    const owners = await env.sql`select distinct owner from actor_owners
      where user_id = any(${ids}::uuid[])`
    expect(owners.map((r) => r.owner)).toEqual(['ams-2'])
    expect((await env.sql`select 1 from actor_owners where owner = 'fra-1'`).length).toBe(0)
    expect(reader.userActors.stats().ownedActors).toBe(0)
  })
})
