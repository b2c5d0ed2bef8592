import { Type as T } from '@sinclair/typebox'
import type { RoomWire } from '../actors/wire'
import { ENTRY_KINDS } from './table'

/**
 * Ledger commands and results as they cross between instances
 * (src/actors/wire.ts). `key` travels with every command: an entry delivered
 * twice (a redelivery, a takeover) replays the first's entry, one effect.
 */
const Kind = T.Union(ENTRY_KINDS.map((k) => T.Literal(k)))

export const LedgerCommandWire = T.Object(
  {
    kind: Kind,
    amount: T.Integer({ minimum: 1 }),
    reason: T.String(),
    key: T.String({ minLength: 1 }),
    generationId: T.Optional(T.String()),
    refundOf: T.Optional(T.String()),
    externalId: T.Optional(T.String()),
  },
  { additionalProperties: false },
)

export const LedgerResultWire = T.Object({
  entry: T.Object({
    id: T.String(),
    amount: T.Integer(),
    balanceAfter: T.Integer(),
    kind: Kind,
    reason: T.String(),
    generationId: T.Union([T.String(), T.Null()]),
    createdAt: T.String(),
  }),
  balance: T.Integer(),
  replayed: T.Boolean(),
})

export const ledgerWire: RoomWire = { command: LedgerCommandWire, result: LedgerResultWire }
