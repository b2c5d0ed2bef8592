import type { Kysely } from 'kysely'
import type { BatchHandler } from '../actors/actor-system'
import type { DB } from '../db/schema'
import { toCommandError } from '../db/errors'
import type { LedgerCommand, LedgerResult } from './commands'
import { ledgerKeys } from './keys'
import { hasEntry } from './repository'
import { toOutcomes } from './service'
import type { LedgerWriter } from './writer'

/** The user actor's ledger commands, as they travel through its mailbox. */
export type LedgerMessage = { type: 'ledger'; command: LedgerCommand }

/** Asks the owning user actor; the only way callers change credits. */
export type Ask = (userId: string, message: LedgerMessage) => Promise<LedgerResult>

/**
 * One ledger_apply per run of ledger commands: a batch of 256 charges is one
 * commit, and the writer puts several users' batches into that commit too.
 * ledger_apply writes a credits.changed event per entry into the outbox in
 * that commit (sql/0014); `committed` tells the relay there is something to send.
 */
export function ledgerHandler(
  writer: LedgerWriter,
  committed: () => void,
): BatchHandler<LedgerMessage, LedgerResult> {
  return async (userId, batch, context) => {
    let outcomes
    try {
      const applied = await writer.apply(
        userId,
        batch.map((m) => m.command),
        context?.epoch,
        context?.signal,
      )
      outcomes = toOutcomes(applied)
    } catch (error) {
      // nothing was applied: a 503 when the database did not answer or the batch passed its
      // deadline (retry is safe: a commit that went through answers as applied, never as
      // this; src/db/deadline.ts), the request's own 4xx when it refused this batch
      // (src/db/errors.ts)
      throw toCommandError(error)
    }
    // committed, with one credits.changed per entry written (a replay wrote none)
    if (outcomes.some((o) => o.ok && !o.value.replayed)) committed()
    return outcomes
  }
}

export type Credits = ReturnType<typeof makeCredits>

export function makeCredits(ask: Ask) {
  return {
    apply: (userId: string, command: LedgerCommand) => ask(userId, { type: 'ledger', command }),
  }
}

/**
 * The signup grant, a rule of the ledger's: `amount` credits once per user
 * (idempotent per user, key 'signup'); none when amount is 0. Asked for at
 * registration and at every login: a read finds it granted and asks no
 * actor, so only a user whose registration ended between its user row and
 * its grant (the owner unreachable) costs a command, once.
 */
export function signupGrant(credits: Credits, db: Kysely<DB>, amount: number) {
  if (amount <= 0) return undefined
  const key = ledgerKeys.signupGrant()
  return async (userId: string) => {
    if (await hasEntry(db, userId, key)) return
    await credits.apply(userId, { kind: 'grant', amount, reason: 'signup credits', key })
  }
}
