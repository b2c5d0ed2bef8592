import { Elysia } from 'elysia'
import type { Guards } from '../http/guards'
import { errors } from '../http/schemas'
import type { Heartbeat } from './heartbeat'
import { QueueStatsSchema, StatsQuery, SystemStatsSchema, UserStatsSchema } from './model'
import { readRange, type Stats } from './service'

export function statsRoutes(deps: { stats: Stats; guards: Guards }) {
  return new Elysia({ detail: { tags: ['stats'] } })
    .use(deps.guards)
    .get(
      '/v1/stats/me',
      ({ principal, query }) => deps.stats.forUser(principal.userId, readRange(query)),
      {
        auth: true,
        query: StatsQuery,
        detail: {
          summary: 'The caller’s statistics over a range of UTC days',
          description:
            'from and to are dates (YYYY-MM-DD), both included; default the last 30 days; at most 366 days. 422 otherwise.',
        },
        response: { 200: UserStatsSchema, ...errors(401, 422) },
      },
    )
}

/** Mounted under /v1/admin behind the admin guard. */
export function adminStatsRoutes(deps: { stats: Stats; heartbeat: Heartbeat }) {
  return new Elysia({ detail: { tags: ['admin'] } }).get(
    '/stats',
    async () => {
      const [system, instances] = await Promise.all([deps.stats.system(), deps.heartbeat.all()])
      const self = deps.heartbeat.local()
      const sum = (f: (i: (typeof instances)[number]) => number) =>
        instances.reduce((a, i) => a + f(i), 0)
      return {
        ...system,
        actorsLive: sum((i) => i.actorsLive),
        websocketConnections: sum((i) => i.websocketConnections),
        // this instance's entry of the list, so it shows the figures the sums were made of
        instance: instances.find((i) => i.id === self.id) ?? self,
        instances,
      }
    },
    {
      detail: {
        summary: 'System totals, and every live instance’s figures',
        description:
          'Users, generations by status, the queue (depth, oldest queued age), items per minute over the last 15 minutes, ledger totals by kind, actors live and WebSocket connections summed over the live instances, and each instance’s figures.',
      },
      response: { 200: SystemStatsSchema, ...errors(401, 403) },
    },
  )
}

/** Mounted under /v1/admin behind the admin guard. */
export function queueAdminRoutes(deps: { stats: Stats }) {
  return new Elysia({ detail: { tags: ['admin'] } }).get('/queue', () => deps.stats.queue(), {
    detail: {
      summary:
        'The work queue: depth, oldest queued age, running, retrying, failed in the last hour, per instance',
    },
    response: { 200: QueueStatsSchema, ...errors(401, 403) },
  })
}
