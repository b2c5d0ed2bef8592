import { Elysia, t } from 'elysia'
import type { Guards } from '../http/guards'
import { Page, PageQuery, errors } from '../http/schemas'
import type { Idempotency } from '../idempotency/idempotency'
import { IdempotencyKeyHeader } from '../idempotency/header'
import { bodyLimit } from '../http/body'
import { JsonInteger } from '../http/text'
import { MULTIPART_OVERHEAD_BYTES, filePart } from './multipart'
import type { Uploads } from './uploads'

export type UploadRoutesDeps = {
  uploads: Uploads
  guards: Guards
  idempotency: Idempotency
  /** MAX_UPLOAD_BYTES: the largest file part. */
  maxFileBytes: number
}

export const UploadSchema = t.Object({
  id: t.String({ description: 'also the id of the stored image at /v1/media/:id' }),
  width: JsonInteger(),
  height: JsonInteger(),
  format: t.Union([t.Literal('png'), t.Literal('jpeg'), t.Literal('webp')], {
    description: 'decided by the bytes, never by the file name or declared type',
  }),
  bytes: JsonInteger({ description: 'stored size, metadata stripped; counts toward the quota' }),
  imageUrl: t.String({ description: 'signed, expiring URL of the stored image' }),
  thumbnailUrl: t.String({ description: 'signed, expiring URL of a 320 px wide WebP' }),
  createdAt: t.String({ format: 'date-time' }),
})

export function uploadRoutes(deps: UploadRoutesDeps) {
  const { uploads, idempotency } = deps
  return new Elysia({ detail: { tags: ['uploads'] } })
    .use(deps.guards)
    .post(
      '/v1/uploads',
      async ({ body, principal, request, set }) => {
        const file = await filePart(request, body, deps.maxFileBytes)
        // the file's bytes are the request: a retry with a new multipart boundary is the same upload
        const sha256 = new Bun.CryptoHasher('sha256').update(file).digest('hex')
        return idempotency.run(
          { request, set, userId: principal.userId, body: { file: sha256 } },
          async (commandKey) => {
            const upload = await uploads.create(principal.userId, file, commandKey)
            set.status = 201
            return upload
          },
        )
      },
      {
        auth: true,
        headers: IdempotencyKeyHeader,
        detail: {
          // the file and its multipart framing; every other route takes MAX_BODY_BYTES
          ...bodyLimit(deps.maxFileBytes + MULTIPART_OVERHEAD_BYTES),
          summary:
            'Upload a reference image (JPEG, PNG or WebP, decided by its bytes; 256–4096 px per side; metadata stripped). Idempotency-Key supported.',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['file'],
                  properties: {
                    file: {
                      type: 'string',
                      format: 'binary',
                      description:
                        'at most MAX_UPLOAD_BYTES (default 10 MiB); the part’s name and type are ignored',
                    },
                  },
                },
              },
            },
          },
        },
        response: { 201: UploadSchema, ...errors(400, 401, 409, 413, 415, 422, 429, 503) },
      },
    )
    .get('/v1/uploads', ({ principal, query }) => uploads.list(principal.userId, query), {
      auth: true,
      query: t.Object(PageQuery),
      detail: { summary: 'The caller’s uploads, newest first' },
      response: { 200: Page(UploadSchema), ...errors(401, 422) },
    })
}
