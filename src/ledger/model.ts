import { t } from 'elysia'
import { JsonInteger, SafeString } from '../http/text'

export const EntryKindSchema = t.Union([
  t.Literal('grant'),
  t.Literal('purchase'),
  t.Literal('charge'),
  t.Literal('refund'),
  t.Literal('adjustment'),
])

export const LedgerEntrySchema = t.Object({
  id: t.String(),
  amount: JsonInteger({ description: 'signed: negative for charges' }),
  balanceAfter: JsonInteger(),
  kind: EntryKindSchema,
  reason: t.String(),
  generationId: t.Optional(t.Union([t.String(), t.Null()])),
  createdAt: t.String({ format: 'date-time' }),
})

export const Balance = t.Object({ balance: JsonInteger() })

export const GrantBody = t.Object({
  userId: SafeString({ format: 'uuid' }),
  amount: JsonInteger({ minimum: 1, maximum: 1_000_000_000 }),
  reason: SafeString({ minLength: 1, maxLength: 500 }),
  kind: t.Optional(
    t.Union([t.Literal('grant'), t.Literal('purchase'), t.Literal('adjustment')], {
      default: 'grant',
      description: 'default grant',
    }),
  ),
})

export const GrantResult = t.Object({ entry: LedgerEntrySchema, balance: JsonInteger() })

export const LedgerCheckSchema = t.Object({
  ok: t.Boolean(),
  accounts: JsonInteger(),
  mismatches: t.Array(
    t.Object({ userId: t.String(), balance: JsonInteger(), sumOfEntries: JsonInteger() }),
  ),
})

export const PaymentEvent = t.Object({
  id: SafeString({ minLength: 1, maxLength: 255 }),
  type: t.Literal('credits.purchased'),
  userId: SafeString({ format: 'uuid' }),
  credits: JsonInteger({ minimum: 1, maximum: 1_000_000_000 }),
})
