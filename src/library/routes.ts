import { Elysia, t } from 'elysia'
import { ValidationFailed } from '../errors'
import { IdParam, Page, errors } from '../http/schemas'
import { encodeCursor, pageLimit } from '../db/keyset'
import {
  CategorySchema,
  PoseInputSchema,
  PoseListQuery,
  PoseSchema,
  readPoseCursor,
  readTags,
} from './model'
import type { Library } from './service'
import type { Guards } from '../http/guards'
import type { Idempotency } from '../idempotency/idempotency'
import { IdempotencyKeyHeader } from '../idempotency/header'

/** The pose library, readable without a token (it is the same for everyone). */
export function libraryRoutes(deps: { library: Library }) {
  const { library } = deps
  return new Elysia({ detail: { tags: ['library'] } })
    .get(
      '/v1/library/poses',
      async ({ query }) => {
        if (query.q !== undefined && !query.q.isWellFormed())
          throw new ValidationFailed([{ path: '/q', message: 'Expected text' }])
        const limit = pageLimit(query.limit)
        const rows = await library.list({
          limit: limit + 1,
          q: query.q,
          tags: readTags(query.tag),
          category: query.category,
          after: readPoseCursor(query.cursor),
        })
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        return {
          items: page,
          nextCursor: rows.length > limit && last ? encodeCursor([last.name, last.id]) : null,
        }
      },
      {
        query: PoseListQuery,
        detail: {
          summary: 'Search the library: poses in (name, id) order, keyset pages. Public.',
          description:
            'Filters combine: ?q= (name or any tag contains it, case-insensitive, % _ \\ literal), ?tag= (repeatable, all must match), ?category=. A cursor continues the same filters.',
        },
        response: { 200: Page(PoseSchema), ...errors(422) },
      },
    )
    .get('/v1/library/poses/:id', ({ params }) => library.get(params.id), {
      params: IdParam,
      detail: { summary: 'One pose. Public.' },
      response: { 200: PoseSchema, ...errors(404) },
    })
    .get('/v1/library/categories', async () => ({ items: await library.categories() }), {
      detail: { summary: 'Categories with their pose counts. Public.' },
      response: { 200: t.Object({ items: t.Array(CategorySchema) }) },
    })
}

/** Pose management; mounted under /v1/admin behind the admin guard. */
export function libraryAdminRoutes(deps: {
  library: Library
  guards: Guards
  idempotency: Idempotency
}) {
  const { library, idempotency } = deps
  return new Elysia({ detail: { tags: ['admin', 'library'] } })
    .use(deps.guards)
    .post(
      '/library/poses',
      ({ body, principal, request, set }) =>
        // a retry whose first answer was lost replays it from the key's record, or, when
        // that record was lost too, finds the pose by what it was created with: the admin,
        // the command key and the body (another body under the key creates its own)
        idempotency.run(
          { request, set, userId: principal.userId, body },
          async (commandKey, requestHash) => {
            // without a key the command key is the request's own: no hash needed
            const creation = `${principal.userId}:${commandKey}:${requestHash ?? ''}`
            const pose = await library.create(body, creation)
            set.status = 201
            return pose
          },
        ),
      {
        admin: true,
        body: PoseInputSchema,
        headers: IdempotencyKeyHeader,
        detail: {
          summary: 'Add a pose to the library (Idempotency-Key supported)',
          description:
            'Keypoints: the 17 COCO keypoints [x, y, visibility] in 0..1. 409 conflict for a name already in that category (ignoring case; names are stored in NFC, so composed and decomposed spellings are one name); 422 for an unknown category.',
        },
        response: { 201: PoseSchema, ...errors(401, 403, 409, 422) },
      },
    )
    .put('/library/poses/:id', ({ params, body }) => library.replace(params.id, body), {
      params: IdParam,
      body: PoseInputSchema,
      detail: { summary: 'Replace a pose of the library' },
      response: { 200: PoseSchema, ...errors(401, 403, 404, 409, 422) },
    })
    .delete(
      '/library/poses/:id',
      async ({ params, set }) => {
        await library.remove(params.id)
        set.status = 204
      },
      {
        params: IdParam,
        detail: {
          summary: 'Remove a pose from the library',
          description: 'Generations that used it keep it (and a queued item still renders it).',
        },
        response: { 204: t.Void(), ...errors(401, 403, 404) },
      },
    )
}
