import { Elysia } from 'elysia'
import type { Guards } from '../http/guards'
import { IdParam, Page, errors } from '../http/schemas'
import type { Idempotency } from '../idempotency/idempotency'
import { IdempotencyKeyHeader } from '../idempotency/header'
import { CreateGenerationBody, GenerationSchema, GenerationSummarySchema, ListQuery } from './model'
import type { Generations } from './service'

export type GenerationRoutesDeps = {
  generations: Generations
  guards: Guards
  idempotency: Idempotency
}

export function generationRoutes(deps: GenerationRoutesDeps) {
  const { generations, idempotency } = deps
  return new Elysia({ detail: { tags: ['generations'] } })
    .use(deps.guards)
    .post(
      '/v1/generations',
      ({ body, principal, request, set }) =>
        idempotency.runRecorded({ request, set, userId: principal.userId, body }, (claim) =>
          generations.accept(principal.userId, body, claim),
        ),
      {
        auth: true,
        body: CreateGenerationBody,
        headers: IdempotencyKeyHeader,
        detail: {
          summary:
            'Start a generation: charged in full when accepted, each failed or cancelled item refunded (Idempotency-Key supported)',
        },
        response: { 202: GenerationSchema, ...errors(400, 401, 402, 409, 413, 415, 422, 429, 503) },
      },
    )
    .get('/v1/generations', ({ principal, query }) => generations.list(principal.userId, query), {
      auth: true,
      query: ListQuery,
      detail: {
        summary: 'The caller’s generations, newest first, without items; ?status= filters',
      },
      response: { 200: Page(GenerationSummarySchema), ...errors(401, 422) },
    })
    .get(
      '/v1/generations/:id',
      ({ principal, params }) => generations.get(principal.userId, params.id),
      {
        auth: true,
        params: IdParam,
        detail: {
          summary: 'One of the caller’s generations, with its items (404 for anyone else’s)',
        },
        response: { 200: GenerationSchema, ...errors(401, 404) },
      },
    )
    .post(
      '/v1/generations/:id/cancel',
      ({ principal, params }) => generations.cancel(principal.userId, params.id),
      {
        auth: true,
        params: IdParam,
        detail: {
          summary:
            'Cancel: queued items become cancelled and are refunded; running ones finish. Idempotent.',
        },
        response: { 200: GenerationSchema, ...errors(401, 404, 503) },
      },
    )
}
