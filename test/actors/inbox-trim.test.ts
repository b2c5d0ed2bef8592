import { describe, expect, it } from 'bun:test'
import { GROUP } from '../../src/actors/streams'
import { makeRedisKeys } from '../../src/redis/keys'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { handInbox, ledgerEnvelope } from '../support/inbox'
import { waitFor } from '../support/wait'

/**
 * An inbox entry answered is acknowledged and deleted (src/actors/inbox.ts
 * `done`): the inbox stream holds only what is still being handled, not
 * every envelope ever forwarded to the instance.
 */
const env = await useTestEnv()
const owner = await env.instance({ INSTANCE_ID: 'trim-owner' })
const sender = await env.instance({ INSTANCE_ID: 'trim-sender' })
const keys = makeRedisKeys(env.redisPrefix)
const redis = owner.redis!

describe('the inbox stream', () => {
  it('keeps no entry once it is answered', async () => {
    const { user } = await client(owner).register()
    const grant = (on: typeof owner) =>
      on.credits.apply(user.id, { kind: 'grant', amount: 1, reason: 'x', key: crypto.randomUUID() })
    await grant(owner)
    for (let i = 0; i < 20; i++) await grant(sender)
    await Promise.all(Array.from({ length: 20 }, () => grant(sender)))
    const [account] = await env.sql`select balance from credit_accounts where user_id = ${user.id}`
    expect(Number(account!.balance)).toBe(41)
    const inbox = keys.instanceInbox('trim-owner')
    expect(await redis.exists(inbox)).toBe(1)
    await waitFor(
      async () => Number(await redis.sendCommand(['XLEN', inbox])) === 0,
      5000,
      "the owner's inbox to hold no answered entry",
    )
    const [pending] = (await redis.sendCommand(['XPENDING', inbox, GROUP])) as [number]
    expect(pending).toBe(0)
  })

  it('answers a sender that is gone without making it a reply stream', async () => {
    const { user } = await client(owner).register()
    const hand = handInbox(env, redis)
    const gone = `gone-${crypto.randomUUID().slice(0, 8)}`
    await hand.send(
      'trim-owner',
      ledgerEnvelope({
        id: 'to-a-gone-sender',
        from: gone,
        key: user.id,
        command: { kind: 'grant', amount: 3, reason: 'x', key: 'to-a-gone-sender' },
      }),
    )
    const inbox = keys.instanceInbox('trim-owner')
    await waitFor(
      async () => Number(await redis.sendCommand(['XLEN', inbox])) === 0,
      5000,
      'the owner to answer and delete the entry',
    )
    const [account] = await env.sql`select balance from credit_accounts where user_id = ${user.id}`
    expect(Number(account!.balance)).toBe(3)
    expect(await redis.exists(keys.instanceReplies(gone))).toBe(0)
  })
})
