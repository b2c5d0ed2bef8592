import { timingSafeEqual } from 'node:crypto'
import { Elysia } from 'elysia'
import { Unauthorized } from '../errors'
import type { Metrics } from '../obs/metrics'
import { bearerToken } from './guards'
import { errors } from './schemas'

export function metricsRoutes(metrics: Metrics, token: string | undefined) {
  const expected = token ? Buffer.from(token) : undefined
  return new Elysia().get(
    '/metrics',
    async ({ request, set }) => {
      if (expected) {
        const given = Buffer.from(bearerToken(request.headers.get('authorization') ?? undefined))
        if (given.length !== expected.length || !timingSafeEqual(given, expected))
          throw new Unauthorized('A valid metrics token is required')
      }
      set.headers['content-type'] = metrics.registry.contentType
      return metrics.registry.metrics()
    },
    {
      detail: {
        tags: ['operations'],
        summary: 'Prometheus metrics (bearer METRICS_TOKEN when it is set)',
        responses: {
          200: {
            description: 'The Prometheus text exposition format',
            content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
          },
        },
      },
      response: { ...errors(401) },
    },
  )
}
