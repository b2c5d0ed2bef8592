import { ensureGroup } from '../../src/actors/streams'
import type { Redis } from '../../src/redis/client'
import { makeRedisKeys } from '../../src/redis/keys'
import type { TestEnv } from './env'
import { waitFor } from './wait'

/**
 * A forwarded ledger command as a sender writes it: `id` is its correlation
 * id, `command` the ledger command (src/ledger/wire.ts, extra fields allowed
 * to play another version).
 */
export function ledgerEnvelope(o: {
  id: string
  from: string
  key: string
  command: Record<string, unknown>
  epoch?: number
}) {
  return {
    id: o.id,
    from: o.from,
    key: o.key,
    epoch: o.epoch ?? 0,
    deadline: Date.now() + 10_000,
    hops: 0,
    command: JSON.stringify({ type: 'ledger', command: o.command }),
  }
}

/**
 * Forwarding driven by hand (src/actors/forwarding.ts): the test plays one
 * side of it, an instance id whose inbox or reply stream it writes and reads
 * itself, so it can send what a sender of another version would, or answer
 * as an owner would.
 */
export function handInbox(env: TestEnv, redis: Redis) {
  const keys = makeRedisKeys(env.redisPrefix)

  /** Every record of `stream`'s entries (an entry holds one, or an array of them). */
  async function records<T>(stream: string): Promise<T[]> {
    const rows = (await redis.sendCommand(['XRANGE', stream, '-', '+'])) as [string, string[]][]
    return rows.flatMap(([, f]) => [JSON.parse(f[1]!) as T | T[]].flat() as T[])
  }

  /** The first records to arrive on `stream`, within 5 s. */
  async function first<T>(stream: string, what: string): Promise<T[]> {
    let got: T[] = []
    await waitFor(
      async () => {
        got = await records<T>(stream)
        return got.length > 0
      },
      5000,
      what,
    )
    return got
  }

  return {
    keys,
    /** Writes `envelope` into `instanceId`'s inbox, as a sender does. */
    send: (instanceId: string, envelope: object) =>
      redis.sendCommand([
        'XADD',
        keys.instanceInbox(instanceId),
        '*',
        'e',
        JSON.stringify(envelope),
      ]),
    /** A sender id played by the test, with its reply stream (an owner answers only into one). */
    async probe() {
      const id = `probe-${crypto.randomUUID().slice(0, 8)}`
      await ensureGroup(redis, keys.instanceReplies(id))
      return id
    },
    /** What the owner answered to the sender id `probe` (its reply stream). */
    repliesTo: <T>(probe: string) =>
      first<T>(keys.instanceReplies(probe), 'the owner to answer the inbox entry'),

    /**
     * An owner played by the test: a live member (heartbeat, member, inbox) that
     * owns `userId` in Postgres, so every instance forwards that user's commands to it.
     */
    async fakeOwner(userId: string) {
      const id = `fake-${crypto.randomUUID().slice(0, 8)}`
      await redis.set(keys.actorHeartbeat(id), String(Date.now()), { PX: 60_000 })
      await redis.zAdd(keys.actorMembers(), { score: Date.now(), value: id })
      await ensureGroup(redis, keys.instanceInbox(id))
      await env.sql`insert into actor_owners (user_id, epoch, owner, lease_until)
        values (${userId}, 1, ${id}, now() + interval '1 minute')
        on conflict (user_id) do update set owner = excluded.owner, epoch = excluded.epoch`
      return {
        id,
        /** The first envelope forwarded to it. */
        received: async () =>
          (
            await first<{ id: string; from: string }>(
              keys.instanceInbox(id),
              'the sender to forward the command to its owner',
            )
          )[0]!,
        /** Answers `envelope` on its sender's reply stream with `reply`. */
        answer: (envelope: { id: string; from: string }, reply: object) =>
          redis.sendCommand([
            ...['XADD', keys.instanceReplies(envelope.from), '*', 'r'],
            JSON.stringify([{ id: envelope.id, ...reply }]),
          ]),
      }
    },
  }
}
