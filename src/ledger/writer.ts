import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import type { LedgerCommand } from './commands'
import { anySignal, inBatch } from '../db/batch-scope'
import { makeGroupCommit, othersAgain, type Member } from '../db/group-commit'
import { isRequestFault, toCommandError } from '../db/errors'
import { StaleEpoch } from '../errors'
import {
  applyCommands,
  applyGroup,
  prepareBatch,
  type AppliedBatch,
  type AppliedRow,
} from './repository'

/**
 * Group commit across actors (src/db/group-commit.ts). Each actor sends one
 * batch at a time; the writer keeps at most `slots` ledger transactions in
 * flight, and whatever queues meanwhile (other users' batches) goes into the
 * next transaction together: with 10,000 users charging at once, 8 batches
 * cost one commit instead of 8. Nothing waits on a timer.
 *
 * One command at fault (a value Postgres refuses, SQLSTATE class 22/23)
 * fails alone: the group falls back to one transaction per user, and that
 * user's batch to one per command (src/db/errors.ts decides whose fault).
 *
 * Each batch comes with its actor's signal. Aborted while it waits here, it
 * leaves the queue unapplied; once in a transaction, that transaction runs
 * under the group's signals (src/db/batch-scope.ts): the first member to
 * pass its deadline ends it, and every member gets what really happened
 * (applied if it committed; if not, the aborted its 503 and the others a
 * place in the next group). Hence an explicit transaction even for one
 * statement: its xid is known before COMMIT is sent.
 */
export type LedgerWriter = ReturnType<typeof makeLedgerWriter>

export type LedgerWriterLimits = {
  /** Concurrent ledger transactions (default 4). */
  slots?: number
  /** Users' batches per transaction (default 64). */
  maxUsersPerCommit?: number
}

/** One user's batch, as its actor hands it in. */
type Batch = {
  userId: string
  /** The owner's fencing epoch (cluster mode); undefined: unfenced (embedded). */
  epoch?: number
  commands: readonly LedgerCommand[]
}
type Waiting = Member<Batch, AppliedBatch>

export function makeLedgerWriter(db: Kysely<DB>, limits: LedgerWriterLimits = {}) {
  const commit = makeGroupCommit<Batch, AppliedBatch>((group, again) => flush(db, group, again), {
    slots: limits.slots,
    maxPerCommit: limits.maxUsersPerCommit,
  })
  return {
    /**
     * Applies one user's batch. `epoch`: the owner's fencing epoch; a stale one fails with
     * StaleEpoch, nothing applied. `signal`: its actor's (see above).
     */
    apply(
      userId: string,
      commands: readonly LedgerCommand[],
      epoch?: number,
      signal?: AbortSignal,
    ): Promise<AppliedBatch> {
      return commit.submit({ userId, epoch, commands }, signal)
    },
  }
}

/** One group's batches in one transaction; when that fails at a command's fault, each alone. */
async function flush(db: Kysely<DB>, group: Waiting[], requeue: (members: Waiting[]) => void) {
  const batches = group.map((w) => prepareBatch(w.input.commands))
  const payload = group.map((w, i) => ({
    userId: w.input.userId,
    epoch: w.input.epoch,
    commands: batches[i]!.payload,
  }))
  // fenced (cluster mode): each batch's epoch is checked under its account lock, and a
  // stale one is skipped alone ({ fenced: true }) while the others commit together
  const fenced = group.some((w) => w.input.epoch !== undefined)
  try {
    const text = JSON.stringify(payload)
    const rows = await inBatch(anySignal(group.map((w) => w.signal)), () =>
      db.transaction().execute((trx) => applyGroup(trx, text, fenced)),
    )
    group.forEach((w, i) => {
      const applied = rows[w.input.userId]!
      if ('fenced' in applied) w.reject(new StaleEpoch())
      else w.resolve(batches[i]!.expand(applied))
    })
  } catch (error) {
    // the combined call rolled back whole. A database that does not answer
    // fails everyone (a retry per user would only hammer it); a command at
    // fault fails alone: each batch again on its own, then, within a batch
    // at fault, each command on its own; one member's deadline, the others again
    if (othersAgain(group, error, requeue)) return
    if (!isRequestFault(error)) return group.forEach((w) => w.reject(toCommandError(error)))
    await Promise.all(group.map((w) => applyAlone(db, w).then(w.resolve, w.reject)))
  }
}

/** One user's batch in its own transaction; when it is at fault, command by command. */
async function applyAlone(db: Kysely<DB>, w: Waiting): Promise<AppliedBatch> {
  const applyInBatch = (commands: readonly LedgerCommand[]) =>
    inBatch(w.signal, () =>
      db
        .transaction()
        .execute((trx) => applyCommands(trx, w.input.userId, commands, w.input.epoch)),
    )
  try {
    return await applyInBatch(w.input.commands)
  } catch (error) {
    if (!isRequestFault(error) || w.input.commands.length === 1) throw toCommandError(error)
  }
  // in order, one transaction each: rare (a value Postgres refuses got past
  // the edge), so simplicity over round trips
  const results: AppliedRow[] = []
  let balance: number | undefined
  for (const command of w.input.commands) {
    try {
      const applied = await applyInBatch([command])
      balance = applied.balance
      results.push(applied.results[0]!)
    } catch (error) {
      if (!isRequestFault(error)) throw toCommandError(error)
      results.push({ ok: false, code: 'refused', error: toCommandError(error) })
    }
  }
  return { balance: balance ?? 0, results }
}
