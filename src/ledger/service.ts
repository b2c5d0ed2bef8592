import type { Kysely, Transaction } from 'kysely'
import type { Outcome } from '../actors/actor-system'
import type { DB } from '../db/schema'
import { IdempotencyConflict, InsufficientCredits, unreachable } from '../errors'
import { decodeCursor, encodeCursor, isSeqCursor } from '../db/keyset'
import type { LedgerCommand, LedgerEntry, LedgerResult } from './commands'
import * as repo from './repository'

type Q = Kysely<DB> | Transaction<DB>

export function toLedgerEntry(row: Record<string, unknown>): LedgerEntry {
  return {
    id: String(row.id),
    amount: Number(row.amount),
    balanceAfter: Number(row.balance_after),
    kind: row.kind as LedgerEntry['kind'],
    reason: String(row.reason),
    generationId: (row.generation_id as string | null) ?? null,
    createdAt: new Date(row.created_at as string | Date).toISOString(),
  }
}

/**
 * Applies a batch for one user (the actor's transaction, or part of a larger
 * one when `q` is a transaction) and returns one outcome per command: a
 * rejected command is rejected alone; the others still apply.
 */
export async function applyLedgerBatch(
  q: Q,
  userId: string,
  commands: readonly LedgerCommand[],
): Promise<Outcome<LedgerResult>[]> {
  return toOutcomes(await repo.applyCommands(q, userId, commands))
}

/** One outcome per command of an applied batch. */
export function toOutcomes({ balance, results }: repo.AppliedBatch): Outcome<LedgerResult>[] {
  return results.map((r): Outcome<LedgerResult> => {
    if (r.ok)
      return {
        ok: true,
        value: { entry: toLedgerEntry(r.entry), balance, replayed: r.replayed === true },
      }
    switch (r.code) {
      case 'insufficient_credits':
        return {
          ok: false,
          error: new InsufficientCredits(Number(r.required), Number(r.available)),
        }
      case 'idempotency_conflict':
        return { ok: false, error: new IdempotencyConflict() }
      case 'refused':
        return { ok: false, error: r.error }
      default:
        throw unreachable(r)
    }
  })
}

export function readBalance(db: Kysely<DB>, userId: string) {
  return repo.readBalance(db, userId)
}

export async function pageEntries(db: Kysely<DB>, userId: string, limit: number, cursor?: string) {
  const beforeSeq = decodeCursor(cursor, isSeqCursor)?.[0]
  const rows = await repo.listEntries(db, userId, limit + 1, beforeSeq)
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return {
    items: page.map((r) => toLedgerEntry(r as unknown as Record<string, unknown>)),
    nextCursor: rows.length > limit && last ? encodeCursor([last.seq]) : null,
  }
}

export type LedgerCheck = {
  ok: boolean
  accounts: number
  mismatches: { userId: string; balance: number; sumOfEntries: number }[]
}

/** Reconciliation: every balance equals the sum of its entries, and every balance_after chains. */
export async function checkLedger(db: Kysely<DB>): Promise<LedgerCheck> {
  const [accounts, rows] = await Promise.all([repo.countAccounts(db), repo.ledgerMismatches(db)])
  const mismatches = rows.map((m) => ({
    userId: m.user_id,
    balance: Number(m.balance),
    sumOfEntries: Number(m.sum_of_entries),
  }))
  return { ok: mismatches.length === 0, accounts, mismatches }
}

export { userExists } from './repository'
