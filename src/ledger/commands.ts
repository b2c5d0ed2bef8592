import type { EntryKind } from './table'

/**
 * What the user actor asks the ledger to do. `amount` is always positive;
 * a charge subtracts it. `key` is the command's idempotency key: the same
 * key applied twice has one effect.
 */
export type LedgerCommand = {
  kind: EntryKind
  amount: number
  reason: string
  key: string
  generationId?: string
  /** The entry a refund gives back (a generation's charge). */
  refundOf?: string
  /** The payment provider's event id: applied at most once across all users. */
  externalId?: string
}

export type LedgerEntry = {
  id: string
  amount: number
  balanceAfter: number
  kind: EntryKind
  reason: string
  generationId: string | null
  createdAt: string
}

export type LedgerResult = { entry: LedgerEntry; balance: number; replayed: boolean }
