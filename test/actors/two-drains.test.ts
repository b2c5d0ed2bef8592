import { describe, expect, it } from 'bun:test'
import { makeRedisKeys } from '../../src/redis/keys'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * Two instances handing off at once (a rolling deploy that stops two): a
 * draining instance answers "moved" to a hand-off sent to it, so the sender
 * picks another live instance for that command rather than the same one
 * again (src/actors/placement.ts `elsewhere`, routing.ts `route`); before, a
 * user whose hash picked the other draining instance bounced into a 503.
 */
const env = await useTestEnv()
const LEASE_MS = 600
const lease = (id: string) => ({ INSTANCE_ID: id, ACTOR_LEASE_MS: String(LEASE_MS) })
const a = await env.instance(lease('drains-a'))
const b = await env.instance(lease('drains-b'))
const c = await env.instance(lease('drains-c'))
const keys = makeRedisKeys(env.redisPrefix)
const redis = a.redis!

const grant = (userId: string) =>
  a.credits.apply(userId, { kind: 'grant', amount: 1, reason: 'x', key: crypto.randomUUID() })

describe('two instances handing off at once', () => {
  it('send each user to the live one, whichever the other draining one would be', async () => {
    // users owned by a; each hand-off target is picked by the user id among a's others,
    // so a dozen of them land on both b and c but for a chance of 2 in 4,096
    const users = await Promise.all(Array.from({ length: 12 }, () => client(a).register()))
    const ids = users.map(({ user }) => user.id)
    await Promise.all(ids.map(grant))
    // a's view holds b and c once it has beaten after both were members
    await waitFor(
      async () => (await redis.zCard(keys.actorMembers())) >= 3,
      5000,
      'all three instances to be members',
    )
    const since = Date.now()
    await waitFor(
      async () => Number(await redis.get(keys.actorHeartbeat('drains-a'))) > since,
      5000,
      'a beat of a after that',
    )
    await b.userActors.handOff()
    await a.userActors.handOff()
    const answers = await Promise.all(ids.map((id) => grant(id).catch((e: Error) => e)))
    expect(answers.filter((r) => r instanceof Error)).toEqual([])
    const owners = await env.sql`select distinct owner from actor_owners
      where user_id = any(${ids}::uuid[])`
    expect(owners.map((r) => r.owner)).toEqual(['drains-c'])
  })
})
