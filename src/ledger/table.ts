import type { ColumnType, Selectable } from 'kysely'

export const ENTRY_KINDS = ['grant', 'purchase', 'charge', 'refund', 'adjustment'] as const
export type EntryKind = (typeof ENTRY_KINDS)[number]

export interface CreditAccountTable {
  user_id: string
  balance: number
  last_seq: number
  updated_at: ColumnType<Date, never, never>
}

export interface LedgerEntryTable {
  id: string
  user_id: string
  seq: number
  amount: number
  balance_after: number
  kind: EntryKind
  reason: string
  generation_id: string | null
  refund_of: string | null
  idempotency_key: string | null
  created_at: ColumnType<Date, never, never>
}

export interface ProcessedWebhookTable {
  id: string
  user_id: string
  received_at: ColumnType<Date, never, never>
}

export type LedgerEntryRow = Selectable<LedgerEntryTable>
