import { t } from 'elysia'
import { CursorParam, Literals, LimitParam } from '../http/schemas'
import { EXPORT_FORMATS } from '../media/images'
import { JsonInteger, SafeString } from '../http/text'

export const GENERATION_MODES = ['library', 'text'] as const
export type GenerationMode = (typeof GENERATION_MODES)[number]

const Mode = Literals(GENERATION_MODES)
const Format = Literals(EXPORT_FORMATS)
const Uuid = SafeString({ format: 'uuid' })

export const CreateGenerationBody = t.Object({
  mode: Mode,
  poseIds: t.Optional(
    t.Array(Uuid, {
      minItems: 1,
      maxItems: 20,
      uniqueItems: true,
      description: 'library mode: 1..20 existing poses',
    }),
  ),
  prompt: t.Optional(
    SafeString({
      maxLength: 4000,
      description:
        'text mode: 3..500 chars after NFC normalization, at most 100 words, no HTML tags or script URLs, no character repeated 10+ times',
    }),
  ),
  variations: JsonInteger({
    minimum: 1,
    maximum: 8,
    description: 'per pose (library) or in total (text)',
  }),
  uploadId: t.Optional(
    SafeString({
      format: 'uuid',
      description:
        'one of the caller’s uploads (422 otherwise, nothing charged): the picture’s backdrop, behind the figure',
    }),
  ),
  background: t.Optional(
    t.Object({
      mode: t.Union([t.Literal('color'), t.Literal('prompt')]),
      value: SafeString({
        minLength: 1,
        // the prompt rules count characters after NFC: 500 of them may be far more UTF-16 units
        maxLength: 4000,
        description:
          'color: #rgb or #rrggbb; prompt: as `prompt` (3..500 chars after NFC normalization, at most 100 words)',
      }),
    }),
  ),
  formats: t.Optional(t.Array(Format, { maxItems: 3, uniqueItems: true })),
  deadlineSeconds: t.Optional(JsonInteger({ minimum: 10, maximum: 86400 })),
})

const ItemStatus = t.Union([
  t.Literal('queued'),
  t.Literal('running'),
  t.Literal('succeeded'),
  t.Literal('failed'),
  t.Literal('cancelled'),
])
const GenerationStatus = t.Union([
  t.Literal('queued'),
  t.Literal('running'),
  t.Literal('succeeded'),
  t.Literal('partial'),
  t.Literal('failed'),
  t.Literal('cancelled'),
])
const Nullable = <T extends Parameters<typeof t.Union>[0][number]>(s: T) => t.Union([s, t.Null()])

export const ItemSchema = t.Object({
  id: t.String(),
  key: t.String({ description: '<poseId>-v<n> or text-v<n>' }),
  status: ItemStatus,
  imageUrl: Nullable(t.String({ description: 'signed, expiring URL' })),
  thumbnailUrl: Nullable(t.String()),
  exports: t.Record(t.String(), t.String(), { description: 'format → signed URL' }),
  error: Nullable(t.Object({ code: t.String(), message: t.String() })),
})

const GenerationFields = {
  id: t.String(),
  status: GenerationStatus,
  mode: Mode,
  totalItems: JsonInteger(),
  succeededItems: JsonInteger(),
  failedItems: JsonInteger(),
  cancelledItems: JsonInteger(),
  creditsCharged: JsonInteger(),
  creditsRefunded: JsonInteger(),
  queuePosition: Nullable(
    JsonInteger({
      description:
        'items queued cluster-wide before this generation’s next queued item; null once none is queued',
    }),
  ),
  createdAt: t.String({ format: 'date-time' }),
  startedAt: Nullable(t.String({ format: 'date-time' })),
  finishedAt: Nullable(t.String({ format: 'date-time' })),
}

export const GenerationSummarySchema = t.Object(GenerationFields)
export const GenerationSchema = t.Object({ ...GenerationFields, items: t.Array(ItemSchema) })

export const ListQuery = t.Object({
  limit: LimitParam,
  cursor: CursorParam,
  status: t.Optional(GenerationStatus),
})
