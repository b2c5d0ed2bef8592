import { Type as T } from '@sinclair/typebox'
import type { RoomWire } from '../actors/wire'

/**
 * Generation commands and results as they cross between instances
 * (src/actors/wire.ts). Each is idempotent by an id it carries: `create` by
 * its commandKey (the charge's ledger key), `cancel` and `claimed` by the
 * statuses they move from, `outcome` by the item's running status and lease
 * owner; so an entry delivered twice has one effect.
 */
const Id = T.String({ minLength: 1 })

const ItemResult = T.Union([
  T.Object(
    {
      status: T.Literal('succeeded'),
      imageMediaId: Id,
      thumbnailMediaId: Id,
      exports: T.Record(T.String(), T.String()),
    },
    { additionalProperties: false },
  ),
  T.Object(
    { status: T.Literal('failed'), code: T.String(), message: T.String() },
    { additionalProperties: false },
  ),
])

export const GenerationCommandWire = T.Union([
  T.Object(
    {
      kind: T.Literal('create'),
      generationId: Id,
      // validated at the edge (model.ts); here only its JSON shape matters
      request: T.Object({ mode: T.Union([T.Literal('library'), T.Literal('text')]) }),
      items: T.Array(
        T.Object(
          {
            id: Id,
            key: T.String(),
            poseId: T.Union([T.String(), T.Null()]),
            variation: T.Integer(),
          },
          { additionalProperties: false },
        ),
      ),
      pricePerItem: T.Integer({ minimum: 0 }),
      deadlineSeconds: T.Union([T.Integer(), T.Null()]),
      commandKey: Id,
      idem: T.Optional(
        T.Object({ key: T.String(), requestHash: T.String() }, { additionalProperties: false }),
      ),
    },
    { additionalProperties: false },
  ),
  T.Object(
    {
      kind: T.Literal('cancel'),
      generationId: Id,
      reason: T.Union([T.Literal('user'), T.Literal('deadline')]),
    },
    { additionalProperties: false },
  ),
  T.Object(
    {
      kind: T.Literal('claimed'),
      generationId: Id,
      items: T.Array(T.Object({ id: Id, key: T.String() }, { additionalProperties: false })),
    },
    { additionalProperties: false },
  ),
  T.Object(
    {
      kind: T.Literal('outcome'),
      itemId: Id,
      owner: T.Union([T.String(), T.Null()]),
      result: ItemResult,
    },
    { additionalProperties: false },
  ),
])

export const GenerationResultWire = T.Object({
  generationId: T.String(),
  applied: T.Boolean(),
  answer: T.Optional(
    T.Object(
      { status: T.Integer(), body: T.Unknown(), replayed: T.Boolean() },
      { additionalProperties: false },
    ),
  ),
})

export const generationWire: RoomWire = {
  command: GenerationCommandWire,
  result: GenerationResultWire,
}
