import { t } from 'elysia'
import { LimitParam } from '../http/schemas'
import { KeypointsSchema } from './keypoints'

export const PoseSchema = t.Object({
  id: t.String(),
  name: t.String(),
  category: t.String({ description: 'category id, e.g. standing' }),
  tags: t.Array(t.String()),
  difficulty: t.Union([t.Literal('easy'), t.Literal('medium'), t.Literal('hard')]),
  keypoints: KeypointsSchema,
  thumbnailUrl: t.Union([t.String(), t.Null()], {
    description: 'null until pose thumbnails are rendered',
  }),
})

export const CategorySchema = t.Object({ id: t.String(), name: t.String(), poseCount: t.Integer() })

export const PoseListQuery = t.Object({
  limit: LimitParam,
  cursor: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
  category: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
})
