import { describe, expect, it } from 'bun:test'
import { AppError } from '../../src/errors'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

/**
 * A hand-off whose release of the owned users fails (Postgres refuses it
 * here; unreachable in production) leaves the records naming the draining
 * instance. It then leaves the membership, so the others find it gone and
 * claim its users over it (src/actors/hand-off.ts `releaseOwned`); before,
 * its heartbeat lived on until it closed and every command for its users
 * bounced between "moved" answers into a 503.
 */
const env = await useTestEnv()
const LEASE_MS = 600
const a = await env.instance({ INSTANCE_ID: 'release-fails-a', ACTOR_LEASE_MS: String(LEASE_MS) })
const b = await env.instance({ INSTANCE_ID: 'release-fails-b', ACTOR_LEASE_MS: String(LEASE_MS) })

const grant = (on: typeof a, userId: string) =>
  on.credits.apply(userId, { kind: 'grant', amount: 1, reason: 'x', key: crypto.randomUUID() })

describe('a hand-off whose release fails', () => {
  it('leaves the membership, and another instance takes the users over', async () => {
    const { user } = await client(a).register()
    await grant(a, user.id)
    const [before] = await env.sql`select owner, epoch from actor_owners where user_id = ${user.id}`
    expect(before!.owner).toBe('release-fails-a')
    await env.sql.unsafe(`create function refuse_release() returns trigger language plpgsql as $$
      begin
        if new.owner is null and old.owner = 'release-fails-a' then raise exception 'refused'; end if;
        return new;
      end $$`)
    await env.sql.unsafe(`create trigger refuse_release before update on actor_owners
      for each row execute function refuse_release()`)
    try {
      await a.userActors.handOff()
    } finally {
      await env.sql.unsafe('drop trigger refuse_release on actor_owners')
    }
    // the others may still see it alive for a beat: a 503 with Retry-After meanwhile, as a
    // client retries; then the user is claimed on b
    const giveUpAt = performance.now() + 10 * LEASE_MS
    let answered: unknown
    for (;;) {
      answered = await grant(b, user.id).catch((e: unknown) => e)
      if (!(answered instanceof AppError && answered.status === 503)) break
      expect(answered.headers?.['retry-after']).toBeDefined()
      if (performance.now() > giveUpAt)
        throw new Error(`b never took the user over: ${answered.message}`)
      await Bun.sleep(100)
    }
    expect(answered).toMatchObject({ balance: 2 })
    const [after] = await env.sql`select owner, epoch from actor_owners where user_id = ${user.id}`
    expect(after!.owner).toBe('release-fails-b')
    expect(Number(after!.epoch)).toBeGreaterThan(Number(before!.epoch))
  }, 20_000)
})
