import { Elysia, t } from 'elysia'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { NotFound } from '../errors'
import { errors } from '../http/schemas'
import { SafeString } from '../http/text'
import type { Authenticator } from '../users/principals'
import { bearerToken } from '../http/guards'
import { findMedia } from './repository'
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
 * (what the API hands out as imageUrl). Anyone else gets the same 404 as for
 * a missing id: no existence leak.
 */
export function mediaRoutes(deps: MediaRoutesDeps) {
  return new Elysia({ detail: { tags: ['media'] } }).get(
    '/v1/media/:id',
    async ({ params, query, request, set }) => {
      const media = await findMedia(deps.db, params.id)
      if (!media) throw new NotFound('Media')
      const signed =
        query.exp !== undefined &&
        query.sig !== undefined &&
        deps.urls.verify(media.id, media.user_id, query.exp, query.sig)
      if (!signed) {
        const principal = await deps.tokens.verify(
          bearerToken(request.headers.get('authorization') ?? undefined),
        )
        if (principal.userId !== media.user_id) throw new NotFound('Media')
      }
      const blob = await deps.storage.get(media.storage_key)
      if (!blob) throw new NotFound('Media')
      set.headers['content-type'] = media.content_type
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
