import { describe, expect, it } from 'bun:test'
import { GROUP } from '../../src/actors/streams'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { handInbox } from '../support/inbox'
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
const redis = owner.redis!
const hand = handInbox(env, redis)

describe('an inbox entry the owner fails to handle', () => {
  it('is answered with its failure and acknowledged, not left pending', async () => {
    const probe = await hand.probe()
    // a release whose ownership read fails in Postgres (the key is not a user id)
    await hand.send('failing-owner', {
      id: 'release-that-fails',
      from: probe,
      key: 'not-a-user-id',
      epoch: 0,
      deadline: Date.now() + 10_000,
      hops: 0,
      command: '',
      op: 'release',
    })
    // as the owner's edge answers that database error (src/db/errors.ts)
    expect(await hand.repliesTo(probe)).toEqual([
      {
        id: 'release-that-fails',
        failed: expect.objectContaining({ code: 'validation_failed', status: 422 }),
      },
    ])
    const inbox = hand.keys.instanceInbox('failing-owner')
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

/** The sender's side: the owner, played by the test, answers `failed`. */
describe('a failure answered by the owner', () => {
  it("is the sender's answer, at once", async () => {
    const sender = await env.instance({
      INSTANCE_ID: 'failure-sender',
      // a sender that read `failed` as "moved" would route again, wait this out and answer 503
      ACTOR_FORWARD_TIMEOUT_MS: '3000',
    })
    const { user } = await client(sender).register()
    const fake = await hand.fakeOwner(user.id)
    const answer = sender.credits.apply(user.id, {
      kind: 'grant',
      amount: 5,
      reason: 'owner failure',
      key: 'owner-failure',
    })
    const envelope = await fake.received()
    expect(envelope.from).toBe('failure-sender')
    await fake.answer(envelope, {
      failed: {
        code: 'unavailable',
        status: 503,
        message: 'From the owner',
        headers: { 'retry-after': '7' },
      },
    })
    const failure = await answer.then(
      () => 'answered',
      (error: unknown) => error,
    )
    expect(failure).toMatchObject({ code: 'unavailable', status: 503, message: 'From the owner' })
    expect((failure as { headers: Record<string, string> }).headers['retry-after']).toBe('7')
  })
})
