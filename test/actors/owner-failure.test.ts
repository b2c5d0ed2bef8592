import { describe, expect, it } from 'bun:test'
import { ensureGroup, GROUP } from '../../src/actors/streams'
import { makeRedisKeys } from '../../src/redis/keys'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * An inbox entry whose handling fails on the owner itself (not the command:
 * the owner's own work around it, such as a release's database read) is
 * answered with that failure at once and acknowledged, so its sender answers
 * the owner's error instead of waiting out its forward deadline
 * (src/actors/inbox.ts `receiveOrFail`, src/actors/routing.ts `forward`).
 */
const env = await useTestEnv()
const owner = await env.instance({ INSTANCE_ID: 'failing-owner' })
const keys = makeRedisKeys(env.redisPrefix)
const redis = owner.redis!

type Row = [string, string[]]

async function repliesTo(probe: string) {
  let replies: { id: string; failed?: { code: string; status: number } }[] = []
  await waitFor(
    async () => {
      const rows = (await redis.sendCommand([
        'XRANGE',
        keys.instanceReplies(probe),
        '-',
        '+',
      ])) as Row[]
      replies = rows.flatMap(([, f]) => [JSON.parse(f[1]!)].flat())
      return replies.length > 0
    },
    5000,
    'the owner to answer the inbox entry',
  )
  return replies
}

describe('an inbox entry the owner fails to handle', () => {
  it('is answered with its failure and acknowledged, not left pending', async () => {
    const probe = `probe-${crypto.randomUUID().slice(0, 8)}`
    // a release whose ownership read fails in Postgres (the key is not a user id)
    const envelope = {
      id: 'release-that-fails',
      from: probe,
      key: 'not-a-user-id',
      epoch: 0,
      deadline: Date.now() + 10_000,
      hops: 0,
      command: '',
      op: 'release',
    }
    const inbox = keys.instanceInbox('failing-owner')
    await redis.sendCommand(['XADD', inbox, '*', 'e', JSON.stringify(envelope)])
    const replies = await repliesTo(probe)
    // as the owner's edge answers that database error (src/db/errors.ts)
    expect(replies).toEqual([
      {
        id: 'release-that-fails',
        failed: expect.objectContaining({ code: 'validation_failed', status: 422 }),
      },
    ])
    await waitFor(
      async () => {
        const [pending] = (await redis.sendCommand(['XPENDING', inbox, GROUP])) as [number]
        return pending === 0
      },
      5000,
      'the owner to acknowledge the entry it answered',
    )
  })
})

/**
 * The sender's side: the owner (the test here, an instance id with a
 * heartbeat and an inbox it reads and answers by hand) answers `failed`.
 */
describe('a failure answered by the owner', () => {
  it("is the sender's answer, at once", async () => {
    const sender = await env.instance({
      INSTANCE_ID: 'failure-sender',
      // a sender that read `failed` as "moved" would route again, wait this out and answer 503
      ACTOR_FORWARD_TIMEOUT_MS: '3000',
    })
    const { user } = await client(sender).register()
    const fake = `failing-fake-${crypto.randomUUID().slice(0, 8)}`
    await redis.set(keys.actorHeartbeat(fake), String(Date.now()), { PX: 60_000 })
    await redis.zAdd(keys.actorMembers(), { score: Date.now(), value: fake })
    await ensureGroup(redis, keys.instanceInbox(fake))
    await env.sql`insert into actor_owners (user_id, epoch, owner, lease_until)
      values (${user.id}, 1, ${fake}, now() + interval '1 minute')
      on conflict (user_id) do update set owner = excluded.owner, epoch = excluded.epoch`
    const answer = sender.credits.apply(user.id, {
      kind: 'grant',
      amount: 5,
      reason: 'owner failure',
      key: 'owner-failure',
    })
    let envelope: { id: string; from: string } | undefined
    await waitFor(
      async () => {
        const rows = (await redis.sendCommand([
          'XRANGE',
          keys.instanceInbox(fake),
          '-',
          '+',
        ])) as Row[]
        envelope = rows.flatMap(([, f]) => [JSON.parse(f[1]!)].flat())[0]
        return envelope !== undefined
      },
      5000,
      'the sender to forward the command to its owner',
    )
    expect(envelope!.from).toBe('failure-sender')
    const failed = {
      code: 'unavailable',
      status: 503,
      message: 'From the owner',
      headers: { 'retry-after': '7' },
    }
    await redis.sendCommand([
      'XADD',
      keys.instanceReplies('failure-sender'),
      '*',
      'r',
      JSON.stringify([{ id: envelope!.id, failed }]),
    ])
    const failure = await answer.then(
      () => 'answered',
      (error: unknown) => error,
    )
    expect(failure).toMatchObject({ code: 'unavailable', status: 503, message: 'From the owner' })
    expect((failure as { headers: Record<string, string> }).headers['retry-after']).toBe('7')
  })
})
