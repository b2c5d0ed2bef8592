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
 * While Redis does not answer, beats fail and the view is kept but marked
 * stale: it still names hand-off targets (live), but whether an owner is
 * alive is then a fresh look at its heartbeat (checkAlive), and nothing is
 * claimed over an owner without one.
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
   * Set by a failed beat, cleared by the next one answered in time: what the
   * last good beat saw may be an outage old by the time a command asks, so an
   * owner is not taken for alive on it (forwarding to an owner still cut off
   * waited out the forward deadline, after which the outage guard had passed
   * and the owner's user was taken over).
   */
  stale: boolean
  /**
   * Since when this instance's beats have all succeeded: a missing heartbeat
   * says an instance died only to one that has seen Redis for a whole lease.
   * After an outage every key has expired, and the live instances need a
   * beat to come back.
   */
  connectedSince?: number
  /**
   * Beats declared failed so far. A beat that started before the latest
   * failure can still complete later (node-redis puts no timeout on a MULTI,
   * written into a stalled connection or queued offline, and sends it once
   * Redis is back); it says nothing current.
   */
  failures: number
}

function failed(view: View) {
  view.failures++
  view.stale = true
  view.connectedSince = undefined
}

export function makeMembership(deps: MembershipDeps) {
  const { redis, keys, instanceId: me, leaseMs, log } = deps
  const view: View = { alive: new Set([me]), stale: false, failures: 0 }
  /** Fresh looks in flight, one per instance id, shared by every command that asks. */
  const looking = new Map<string, Promise<boolean>>()
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
            void withDeadline(beatDeadlineMs(deps), 'actor heartbeat', () =>
              beat(deps, view, settled),
            ).catch((err) => {
              failed(view)
              log.warn({ err }, 'actor heartbeat failed')
            })
        },
        Math.max(50, Math.floor(leaseMs / 3)),
      )
      timer.unref?.()
    },
    /** Whether a missing heartbeat may be read as a dead instance (see connectedSince). */
    settled,
    /** Who may take a user on a hand-off: the last good beat's view (checked again by forwarding). */
    live: () => [...view.alive].sort(),
    /**
     * Alive by a current view, or else by a fresh look at its heartbeat key: a
     * member that joined since the last beat is seen at once, nobody's users
     * are taken over on the view alone, and none on a stale view.
     */
    async checkAlive(id: string) {
      if (id === me || (!view.stale && view.alive.has(id))) return true
      let pending = looking.get(id)
      if (!pending) {
        pending = withDeadline(deps.timeoutMs, 'actor heartbeat', () =>
          redis.exists(keys.actorHeartbeat(id)),
        )
          .then((n) => n === 1)
          .finally(() => looking.delete(id))
        looking.set(id, pending)
      }
      const found = await pending
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

const beatDeadlineMs = (deps: MembershipDeps) => deps.timeoutMs * 2

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
  // a beat counted as failed meanwhile, or that this process reached only past its deadline
  // (paused between the answers and here), says nothing current: the view is left as it is
  if (view.failures !== failures) return
  if (Date.now() - now > beatDeadlineMs(deps)) return failed(view)
  // connected since this beat's answer, not its start: its start may be inside an outage
  view.connectedSince ??= Date.now()
  const next = new Set<string>([me])
  others.forEach((id, i) => {
    if (beats[i] !== null) next.add(id)
    else if (settled()) deps.onDead(id)
  })
  view.alive = next
  view.stale = false
  await redis.zRemRangeByScore(members, '-inf', forgotten)
}
