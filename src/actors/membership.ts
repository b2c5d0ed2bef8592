import type { Logger } from '../obs/logger'
import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'

/**
 * Liveness of instances, O(instances) whatever the number of users: one
 * Redis key per instance with a TTL of `leaseMs` (ACTOR_LEASE_MS), renewed
 * every third of it; an owner is alive while its instance is. A sorted set
 * of member ids says whose keys to look for; each beat also refreshes this
 * instance's view of who is alive, and reports members whose key expired
 * (`onDead`: their inboxes are taken over).
 *
 * States: beating ──close()──▶ closed (timer stopped, heartbeat deleted, so
 * the others see this instance gone at once, not after the lease).
 * While Redis does not answer, beats fail and the view stays as it was;
 * nothing is claimed over an owner without a fresh look (checkAlive).
 */
export type Membership = ReturnType<typeof makeMembership>

export type MembershipDeps = {
  redis: Redis
  keys: RedisKeys
  instanceId: string
  leaseMs: number
  /**
   * False outside the Fly.io primary region: the instance watches the others
   * but never announces itself, so it is never chosen to take a user over.
   */
  announce: boolean
  /** Deadline of a fresh look at a heartbeat (checkAlive). */
  timeoutMs: number
  log: Logger
  onDead: (instanceId: string) => void
}

/** Members silent for this many leases are forgotten (their inboxes were taken over long ago). */
const FORGET_AFTER_LEASES = 100

type View = {
  alive: Set<string>
  /**
   * Since when this instance's beats have all succeeded: a missing heartbeat
   * says an instance died only to one that has seen Redis for a whole lease.
   * After an outage every key has expired, and the live instances need a
   * beat to come back.
   */
  connectedSince?: number
  /**
   * Beats declared failed so far. A beat that started before the latest
   * failure can still complete later (node-redis sends a MULTI queued while
   * offline, without a timeout, once Redis is back); it says nothing about
   * since when this instance has been connected.
   */
  failures: number
}

export function makeMembership(deps: MembershipDeps) {
  const { redis, keys, instanceId: me, leaseMs, log } = deps
  const view: View = { alive: new Set([me]), failures: 0 }
  let timer: ReturnType<typeof setInterval> | undefined
  let closed = false
  const settled = () =>
    view.connectedSince !== undefined && Date.now() - view.connectedSince >= leaseMs

  return {
    async start() {
      await beat(deps, view, settled)
      timer = setInterval(
        () => {
          // a beat that does not answer in time failed (a stalled Redis never errs)
          if (!closed)
            void withDeadline(deps.timeoutMs * 2, 'actor heartbeat', () =>
              beat(deps, view, settled),
            ).catch((err) => {
              view.failures++
              view.connectedSince = undefined
              // what the last beat saw may be an outage old by the time a command asks: until
              // a beat succeeds, every other instance is looked up afresh (checkAlive)
              view.alive = new Set([me])
              log.warn({ err }, 'actor heartbeat failed')
            })
        },
        Math.max(50, Math.floor(leaseMs / 3)),
      )
      timer.unref?.()
    },
    /** From the last beat's view (at most a third of the lease old). */
    isAlive: (id: string) => id === me || view.alive.has(id),
    /** Whether a missing heartbeat may be read as a dead instance (see connectedSince). */
    settled,
    live: () => [...view.alive].sort(),
    /**
     * Alive by the view, or else by a fresh look at its heartbeat key: a member
     * that joined since the last beat is seen at once, and nobody's users are
     * taken over on the view alone.
     */
    async checkAlive(id: string) {
      if (id === me || view.alive.has(id)) return true
      const found =
        (await withDeadline(deps.timeoutMs, 'actor heartbeat', () =>
          redis.exists(keys.actorHeartbeat(id)),
        )) === 1
      if (found) view.alive.add(id)
      return found
    },
    async close() {
      closed = true
      clearInterval(timer)
      await redis
        .multi()
        .del(keys.actorHeartbeat(me))
        .zRem(keys.actorMembers(), me)
        .exec()
        .catch(() => {})
    },
  }
}

/** One heartbeat: announce (when this instance may own), then refresh the view of the others. */
async function beat(deps: MembershipDeps, view: View, settled: () => boolean) {
  const { redis, keys, instanceId: me, leaseMs } = deps
  const members = keys.actorMembers()
  const now = Date.now()
  const failures = view.failures
  if (deps.announce)
    await redis
      .multi()
      .set(keys.actorHeartbeat(me), String(now), { PX: leaseMs })
      .zAdd(members, { score: now, value: me })
      .exec()
  const forgotten = now - FORGET_AFTER_LEASES * leaseMs
  const ids = await redis.zRangeByScore(members, forgotten, '+inf')
  const others = ids.filter((id) => id !== me)
  const beats = others.length ? await redis.mGet(others.map(keys.actorHeartbeat)) : []
  // connected since this beat's answer, not its start: its start may be inside an outage
  if (view.failures === failures) view.connectedSince ??= Date.now()
  const next = new Set<string>([me])
  others.forEach((id, i) => {
    if (beats[i] !== null) next.add(id)
    else if (settled()) deps.onDead(id)
  })
  view.alive = next
  await redis.zRemRangeByScore(members, '-inf', forgotten)
}
