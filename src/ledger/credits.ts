import type { BatchHandler } from '../actors/actor-system'
import { toCommandError } from '../db/errors'
import type { LedgerCommand, LedgerResult } from './commands'
import { toOutcomes } from './service'
import type { LedgerWriter } from './writer'
import type { Publish } from '../events/event'

/** The user actor's ledger commands, as they travel through its mailbox. */
export type LedgerMessage = { type: 'ledger'; command: LedgerCommand }

/** Asks the owning user actor; the only way callers change credits. */
export type Ask = (userId: string, message: LedgerMessage) => Promise<LedgerResult>

/**
 * One ledger_apply per run of ledger commands: a batch of 256 charges is one
 * commit, and the writer puts several users' batches into that commit too.
 */
export function ledgerHandler(
  writer: LedgerWriter,
  publish: Publish,
): BatchHandler<LedgerMessage, LedgerResult> {
  return async (userId, batch) => {
    let outcomes
    try {
      const applied = await writer.apply(
        userId,
        batch.map((m) => m.command),
      )
      outcomes = toOutcomes(applied)
    } catch (error) {
      // nothing was applied: a 503 when the database did not answer (retry is safe), the
      // request's own 4xx when it refused this batch (src/db/errors.ts)
      throw toCommandError(error)
    }
    // committed: one credits.changed per entry written (a replay changed nothing)
    for (const o of outcomes)
      if (o.ok && !o.value.replayed)
        publish(userId, 'credits.changed', {
          balance: o.value.entry.balanceAfter,
          delta: o.value.entry.amount,
          kind: o.value.entry.kind,
        })
    return outcomes
  }
}

export type Credits = ReturnType<typeof makeCredits>

export function makeCredits(ask: Ask) {
  return {
    apply: (userId: string, command: LedgerCommand) => ask(userId, { type: 'ledger', command }),
  }
}
