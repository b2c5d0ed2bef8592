import { Elysia, t } from 'elysia'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { countUsers } from '../users/repository'

/** Live figures that other rooms contribute to /v1/admin/stats (actors, sockets, queue). */
export type StatsSource = () => number

export type AdminStatsDeps = {
  db: Kysely<DB>
  instanceId: string
  region: string | undefined
  sources: Record<string, StatsSource>
}

const startedAt = Date.now()

export function adminStatsRoutes(deps: AdminStatsDeps) {
  return new Elysia({ detail: { tags: ['admin'] } }).get(
    '/stats',
    async () => {
      const live = Object.fromEntries(Object.entries(deps.sources).map(([k, f]) => [k, f()]))
      return {
        users: await countUsers(deps.db),
        instance: {
          id: deps.instanceId,
          region: deps.region ?? null,
          uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
          ...live,
        },
      }
    },
    {
      detail: { summary: 'System totals and this instance’s live figures' },
      response: {
        200: t.Object({
          users: t.Integer(),
          instance: t.Object(
            { id: t.String(), region: t.Union([t.String(), t.Null()]), uptimeSeconds: t.Number() },
            { additionalProperties: t.Number() },
          ),
        }),
      },
    },
  )
}
