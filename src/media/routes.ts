import { Elysia, t } from 'elysia'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { errors } from '../http/schemas'
import { SafeString } from '../http/text'
import type { Authenticator } from '../users/principals'
import { bearerToken } from '../http/guards'
import { makeMediaReads } from './service'
import type { MediaUrls } from './signed-urls'
import type { BlobStorage } from './storage'

export type MediaRoutesDeps = {
  db: Kysely<DB>
  storage: BlobStorage
  urls: MediaUrls
  tokens: Pick<Authenticator, 'verify'>
}

/**
 * GET /v1/media/:id: the owner's bytes, with a bearer token or a signed URL
 * (what the API hands out as imageUrl); who may read is the media room's
 * rule (service.ts), not the handler's.
 */
export function mediaRoutes(deps: MediaRoutesDeps) {
  const reads = makeMediaReads(deps)
  return new Elysia({ detail: { tags: ['media'] } }).get(
    '/v1/media/:id',
    async ({ params, query, request, set }) => {
      const { contentType, blob } = await reads.open(params.id, {
        ...query,
        bearer: () =>
          deps.tokens.verify(bearerToken(request.headers.get('authorization') ?? undefined)),
      })
      set.headers['content-type'] = contentType
      set.headers['content-length'] = String(blob.size)
      // the bytes behind an id never change; private: never in a shared cache
      set.headers['cache-control'] = 'private, max-age=31536000, immutable'
      set.headers['x-content-type-options'] = 'nosniff'
      return new Response(blob.body as BodyInit, { headers: set.headers as Record<string, string> })
    },
    {
      params: t.Object({ id: SafeString({ format: 'uuid' }) }),
      query: t.Object({
        exp: t.Optional(t.Integer()),
        sig: t.Optional(SafeString({ maxLength: 128 })),
      }),
      detail: {
        summary:
          'Image bytes: owner only, by bearer token or by the signed, expiring URL given as imageUrl',
        responses: {
          200: {
            description: 'The image',
            content: { 'image/png': {}, 'image/webp': {}, 'image/jpeg': {} },
          },
        },
      },
      response: { ...errors(401, 404, 422) },
    },
  )
}
