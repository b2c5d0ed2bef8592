import type { Ownership } from './repository'

/** Who owns (or gave up) a user's actor, as /v1/admin/actors/:userId shows it. */
export type OwnerView = { userId: string; owner: string; epoch: number; since: string }

export function ownerView(o: Ownership, owner: string): OwnerView {
  return { userId: o.userId, owner, epoch: o.epoch, since: o.since.toISOString() }
}
