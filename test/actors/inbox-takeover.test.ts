import { describe, expect, it } from 'bun:test'
import { takeOverInbox } from '../../src/actors/inbox-takeover'
import { ensureGroup, readGroup, type Entry } from '../../src/actors/streams'
import { useTestEnv } from '../support/env'
import { handInbox } from '../support/inbox'

/**
 * Taking a dead instance's inbox over (src/actors/inbox-takeover.ts): what
 * it read and never acknowledged and what it never read, each handled once;
 * its streams and membership gone after; one taker at a time, and the lock
 * released only by the taker that holds it.
 */
const env = await useTestEnv()
const redis = (await env.instance({ INSTANCE_ID: 'takeover-host' })).redis!
const hand = handInbox(env, redis)
const { keys } = hand

async function deadWithEntries(n: number, readByIt: number) {
  const dead = `dead-${crypto.randomUUID().slice(0, 8)}`
  await ensureGroup(redis, keys.instanceInbox(dead))
  await ensureGroup(redis, keys.instanceReplies(dead))
  await redis.zAdd(keys.actorMembers(), { score: Date.now(), value: dead })
  for (let i = 0; i < n; i++) await hand.send(dead, { id: `e${i}` })
  // the dead one had read some and died before acknowledging them
  await readGroup(redis, keys.instanceInbox(dead), dead, '>').then((all) => all.slice(0, readByIt))
  return dead
}

const idOf = ([, fields]: Entry) => (JSON.parse(fields[1]!) as { id: string }).id

describe('an inbox taken over', () => {
  it('has every entry handled once, then its streams and membership deleted', async () => {
    const dead = await deadWithEntries(5, 5)
    // two more it never read
    await hand.send(dead, { id: 'e5' })
    await hand.send(dead, { id: 'e6' })
    const handled: string[] = []
    const n = await takeOverInbox(
      { redis, keys, instanceId: 'taker', handle: async (_s, e) => void handled.push(idOf(e)) },
      dead,
    )
    expect(n).toBe(7)
    expect(handled.sort()).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6'])
    expect(await redis.exists(keys.instanceInbox(dead))).toBe(0)
    expect(await redis.exists(keys.instanceReplies(dead))).toBe(0)
    expect(await redis.zScore(keys.actorMembers(), dead)).toBeNull()
    expect(await redis.exists(keys.actorTakeover(dead))).toBe(0)
  })

  it('is left to the taker that holds the lock', async () => {
    const dead = await deadWithEntries(2, 0)
    await redis.set(keys.actorTakeover(dead), 'another-taker', { PX: 30_000 })
    const handled: string[] = []
    const n = await takeOverInbox(
      { redis, keys, instanceId: 'taker', handle: async (_s, e) => void handled.push(idOf(e)) },
      dead,
    )
    expect(n).toBe(0)
    expect(handled).toEqual([])
    expect(await redis.get(keys.actorTakeover(dead))).toBe('another-taker')
    expect(await redis.exists(keys.instanceInbox(dead))).toBe(1)
  })

  it('does not release a lock that passed to another taker while it worked', async () => {
    const dead = await deadWithEntries(1, 0)
    const n = await takeOverInbox(
      {
        redis,
        keys,
        instanceId: 'slow-taker',
        // handling took past the lock's life: it expired, and another taker holds it now
        handle: async () => void (await redis.set(keys.actorTakeover(dead), 'next-taker')),
      },
      dead,
    )
    expect(n).toBe(1)
    expect(await redis.get(keys.actorTakeover(dead))).toBe('next-taker')
  })
})
