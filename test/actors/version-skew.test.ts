import { describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { handInbox, ledgerEnvelope } from '../support/inbox'

/**
 * A forwarded command this instance cannot read (a sender of another version
 * during a rolling deploy, with a field this version does not know) is
 * answered 503 with Retry-After, so that its client retries, not 500
 * (src/actors/routing.ts, `receive`).
 */
const env = await useTestEnv()
const owner = await env.instance({ INSTANCE_ID: 'skew-owner' })
const hand = handInbox(env, owner.redis!)

describe('a forwarded command of another version', () => {
  it('is answered 503 with Retry-After, and changes nothing', async () => {
    const { user } = await client(owner).register()
    const probe = await hand.probe()
    const envelope = ledgerEnvelope({
      id: 'from-a-newer-version',
      from: probe,
      key: user.id,
      command: { kind: 'grant', amount: 5, reason: 'skew', key: 'skew', since: 'v2' },
    })
    await hand.send('skew-owner', envelope)
    const replies = await hand.repliesTo<{ id: string; outcome?: string }>(probe)
    expect(replies.map((r) => r.id)).toEqual(['from-a-newer-version'])
    const outcome = JSON.parse(replies[0]!.outcome!)
    expect(outcome).toMatchObject({
      ok: false,
      error: { code: 'unavailable', status: 503, headers: { 'retry-after': '2' } },
    })
    const [entries] =
      await env.sql`select count(*)::int as n from ledger_entries where reason = 'skew'`
    expect(entries!.n).toBe(0)
  })
})

/**
 * The other side of it: an owner of another version answers with an outcome
 * this sender cannot read. The owner here is the test, an instance id with a
 * heartbeat and an inbox that the test reads and answers by hand (test/support/inbox.ts).
 */
describe('an outcome of another version', () => {
  it('is answered 503 with Retry-After by the sender', async () => {
    const sender = await env.instance({ INSTANCE_ID: 'skew-sender' })
    const { user } = await client(sender).register()
    const fake = await hand.fakeOwner(user.id)
    const answer = sender.credits.apply(user.id, {
      kind: 'grant',
      amount: 5,
      reason: 'skew outcome',
      key: 'skew-outcome',
    })
    const envelope = await fake.received()
    expect(envelope.from).toBe('skew-sender')
    // a result with a field this version does not know
    const outcome = JSON.stringify({ ok: true, value: { balance: 5, since: 'v2' } })
    await fake.answer(envelope, { outcome })
    const failure = await answer.then(
      () => 'answered',
      (error: unknown) => error,
    )
    expect(failure).toMatchObject({ code: 'unavailable', status: 503 })
    expect((failure as { headers: Record<string, string> }).headers['retry-after']).toBe('2')
  })
})
