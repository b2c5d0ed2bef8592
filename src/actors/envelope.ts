import type { WireErrorValue } from './wire'

/**
 * What crosses between instances (forwarding.ts): an envelope to an owner's
 * inbox, and the reply that comes back on the sender's reply stream.
 */
export type Envelope = {
  /** Correlation id: the reply carries it. */
  id: string
  /** The sender's instance id: where the reply goes. */
  from: string
  key: string
  /** The owner's epoch as the sender saw it (0: unknown). */
  epoch: number
  /** Milliseconds since 1970 after which the sender no longer waits. */
  deadline: number
  hops: number
  /** The command, encoded by the runtime's wire codec ('' for a release). */
  command: string
  /** 'release': not a command but an explicit rebalance of `key` (rebalance.ts). */
  op?: 'release'
}

/**
 * What the receiver answers: the outcome, encoded, or "not mine" (the sender
 * re-routes); to a release, the ownership it gave up (null: it held none);
 * or its own failure to handle the envelope (a database error while it
 * released, an outcome it could not encode), as its edge would have answered
 * it (wire.ts `encodeError`), so the sender answers that at once instead of
 * at its deadline. A sender of an older version reads `failed` as "moved" and
 * routes again, at most a few hops.
 */
export type Reply =
  | { outcome: string }
  | { moved: true }
  | { released: { epoch: number; since: string } | null }
  | { failed: WireErrorValue }

export class InboxGone extends Error {
  constructor(instanceId: string) {
    super(`the inbox of ${instanceId} is gone`)
    this.name = 'InboxGone'
  }
}

export class ReplyTimeout extends Error {
  constructor(ms: number) {
    super(`no reply within ${ms} ms`)
    this.name = 'ReplyTimeout'
  }
}
