import { t } from 'elysia'

export const EntryKindSchema = t.Union([
  t.Literal('grant'),
  t.Literal('purchase'),
  t.Literal('charge'),
  t.Literal('refund'),
  t.Literal('adjustment'),
])

export const LedgerEntrySchema = t.Object({
  id: t.String(),
  amount: t.Integer({ description: 'signed: negative for charges' }),
  balanceAfter: t.Integer(),
  kind: EntryKindSchema,
  reason: t.String(),
  generationId: t.Optional(t.Union([t.String(), t.Null()])),
  createdAt: t.String({ format: 'date-time' }),
})

export const Balance = t.Object({ balance: t.Integer() })

export const GrantBody = t.Object({
  userId: t.String({ format: 'uuid' }),
  amount: t.Integer({ minimum: 1, maximum: 1_000_000_000 }),
  reason: t.String({ minLength: 1, maxLength: 500 }),
  kind: t.Optional(
    t.Union([t.Literal('grant'), t.Literal('purchase'), t.Literal('adjustment')], {
      default: 'grant',
      description: 'default grant',
    }),
  ),
})

export const GrantResult = t.Object({ entry: LedgerEntrySchema, balance: t.Integer() })

export const LedgerCheckSchema = t.Object({
  ok: t.Boolean(),
  accounts: t.Integer(),
  mismatches: t.Array(
    t.Object({ userId: t.String(), balance: t.Integer(), sumOfEntries: t.Integer() }),
  ),
})

export const PaymentEvent = t.Object({
  id: t.String({ minLength: 1, maxLength: 255 }),
  type: t.Literal('credits.purchased'),
  userId: t.String({ format: 'uuid' }),
  credits: t.Integer({ minimum: 1, maximum: 1_000_000_000 }),
})

export const IdempotencyKeyHeader = t.Object({
  'idempotency-key': t.Optional(
    t.String({ minLength: 1, maxLength: 255, description: 'Replays the first response for 24 h' }),
  ),
})
