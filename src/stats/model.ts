import { t } from 'elysia'
import { JsonInteger, SafeString } from '../http/text'

const DateParam = (what: string) =>
  t.Optional(
    SafeString({
      maxLength: 10,
      description: `${what}: an RFC 3339 full-date, YYYY-MM-DD (UTC days)`,
      examples: ['2026-12-01'],
    }),
  )

export const StatsQuery = t.Object({
  from: DateParam('first day, included (default: 29 days before to)'),
  to: DateParam('last day, included (default: today); at most 366 days after from'),
})

const Count = JsonInteger({ minimum: 0 })
const ByGenerationStatus = t.Object({
  queued: Count,
  running: Count,
  succeeded: Count,
  partial: Count,
  failed: Count,
  cancelled: Count,
})

export const UserStatsSchema = t.Object({
  generations: t.Object(
    { total: Count, byStatus: ByGenerationStatus },
    { description: 'generations created in the range' },
  ),
  images: t.Object(
    { succeeded: Count, failed: Count, cancelled: Count },
    { description: 'items that ended in the range, by outcome' },
  ),
  credits: t.Object(
    {
      granted: Count,
      purchased: Count,
      charged: Count,
      refunded: Count,
      balance: JsonInteger({ description: 'now, whatever the range' }),
    },
    { description: 'ledger entries in the range by kind (positive amounts), and the balance' },
  ),
  topPoses: t.Array(t.Object({ poseId: t.String(), name: t.String(), uses: Count }), {
    description: 'up to 5 poses with the most images that succeeded in the range',
  }),
  daily: t.Array(
    t.Object({
      date: t.String({ description: 'YYYY-MM-DD (UTC)' }),
      images: Count,
      credits: JsonInteger({ description: 'credits spent that day: charges less refunds' }),
    }),
    { description: 'every day of the range, in order, zero-filled' },
  ),
})

const InstanceSchema = t.Object(
  {
    id: t.String(),
    region: t.Union([t.String(), t.Null()]),
    uptimeSeconds: t.Number(),
    actorsLive: Count,
    ownedActors: JsonInteger({ minimum: 0, description: 'user actors this instance owns' }),
    forwardsPerSecond: t.Number({ description: 'commands forwarded to other owners, last 10 s' }),
    takeovers: JsonInteger({ minimum: 0, description: 'users claimed over a dead owner' }),
    websocketConnections: Count,
    inflightRequests: Count,
    at: t.String({ description: 'when these figures were taken' }),
  },
  { additionalProperties: t.Number() },
)

const LedgerKind = t.Object({ entries: Count, amount: JsonInteger() })

export const SystemStatsSchema = t.Object({
  users: Count,
  generations: t.Object({ total: Count, byStatus: ByGenerationStatus }),
  queue: t.Object({
    depth: JsonInteger({ description: 'items queued' }),
    oldestQueuedAgeSeconds: t.Union([JsonInteger(), t.Null()]),
  }),
  itemsPerMinute: t.Number({ description: 'items that ended in the last 15 minutes, per minute' }),
  ledger: t.Object(
    {
      grant: LedgerKind,
      purchase: LedgerKind,
      charge: LedgerKind,
      refund: LedgerKind,
      adjustment: LedgerKind,
    },
    { description: 'every entry by kind: count and signed sum' },
  ),
  actorsLive: JsonInteger({ description: 'over the live instances' }),
  websocketConnections: JsonInteger({ description: 'over the live instances' }),
  instance: InstanceSchema,
  instances: t.Array(InstanceSchema, {
    description: 'every live instance (heartbeat records in Redis; this one alone when embedded)',
  }),
})

export const QueueStatsSchema = t.Object({
  depth: JsonInteger(),
  oldestQueuedAgeSeconds: t.Union([JsonInteger(), t.Null()]),
  running: JsonInteger(),
  retrying: JsonInteger(),
  failedLastHour: JsonInteger(),
  itemsPerMinute: JsonInteger(),
  perInstance: t.Array(t.Object({ instance: t.String(), running: JsonInteger() })),
})
