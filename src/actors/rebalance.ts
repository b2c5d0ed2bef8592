import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { Unavailable } from '../errors'
import { InboxGone, ReplyTimeout, type Envelope, type Reply } from './envelope'
import type { Forwarding } from './forwarding'
import type { Placement } from './placement'
import { ownerView, type OwnerView } from './owner-view'
import { readOwner, type Ownership } from './repository'
import { decodeFailure } from './wire'

/**
 * An explicit rebalance from any instance (DELETE /v1/admin/actors/:userId):
 * the owner, found in Postgres, gives the user up (hand-off.ts `release`),
 * directly when it is this instance, else asked through its inbox with an
 * envelope of op 'release', or taken over here and released when its owner
 * is dead. No state of its own: each call reads the owner
 * afresh, and asks again (at most MAX_HOPS times) when the owner changed
 * under it.
 */
export type RebalanceDeps = {
  db: Kysely<DB>
  instanceId: string
  placement: Placement
  send: Forwarding['send']
  /** This instance's own release of a key it holds (hand-off.ts). */
  releaseHere: (key: string) => Promise<Ownership | undefined>
  /** How long to await the owner's answer (ACTOR_FORWARD_TIMEOUT_MS). */
  timeoutMs: number
}

const MAX_HOPS = 3

export function makeRebalance(deps: RebalanceDeps) {
  return {
    /** Releases `key` wherever it is owned; undefined when nobody owns it. */
    release: (key: string) => release(deps, key),
    /** The owner's side: a release envelope from another instance, answered. */
    async answer(envelope: Envelope): Promise<Reply> {
      const released = await deps.releaseHere(envelope.key)
      return {
        released: released ? { epoch: released.epoch, since: released.since.toISOString() } : null,
      }
    },
  }
}

/** The ownership given up (its owner, epoch and claim time); undefined: nobody owned `key`. */
async function release(deps: RebalanceDeps, key: string): Promise<OwnerView | undefined> {
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    const row = await readOwner(deps.db, key)
    if (!row?.owner) return undefined
    if (row.owner === deps.instanceId) {
      const released = await deps.releaseHere(key)
      if (released) return ownerView(released, row.owner)
      continue
    }
    const answer = (await deps.placement.isAlive(row.owner))
      ? await askOwner(deps, row.owner, key)
      : await takeOverAndRelease(deps, key, row)
    if (answer) return { userId: key, owner: row.owner, ...answer }
  }
  throw new Unavailable('The owner of this account moved too often; retry', 1)
}

/**
 * A dead owner cannot release: the user is claimed over it here (a takeover,
 * with a higher epoch, so the dead one fences even if it was only paused; a
 * release alone keeps the epoch it could still write under), then released
 * from here. Answers the dead owner's record, the ownership given up; undefined
 * when a live instance holds the user now (read the owner again).
 */
async function takeOverAndRelease(deps: RebalanceDeps, key: string, row: Ownership) {
  if ((await deps.placement.decide(key, true)) !== undefined) return undefined
  if (!(await deps.releaseHere(key))) return undefined
  return { epoch: row.epoch, since: row.since.toISOString() }
}

/** The owner's release, or undefined when it holds the key no more (read the owner again). */
async function askOwner(deps: RebalanceDeps, owner: string, key: string) {
  const envelope: Envelope = {
    id: crypto.randomUUID(),
    from: deps.instanceId,
    key,
    epoch: 0,
    deadline: Date.now() + deps.timeoutMs,
    hops: 0,
    command: '',
    op: 'release',
  }
  let reply: Reply
  try {
    reply = await deps.send(owner, envelope, deps.timeoutMs)
  } catch (err) {
    if (err instanceof InboxGone) return undefined
    const what = err instanceof ReplyTimeout ? 'did not answer in time' : 'could not be reached'
    throw new Unavailable(`The owner of this account ${what}; retry`, 1, err)
  }
  if ('failed' in reply) throw decodeFailure(reply.failed)
  return 'released' in reply ? (reply.released ?? undefined) : undefined
}
