import { Elysia, t } from 'elysia'
import { NotFound } from '../errors'
import { errors } from '../http/schemas'
import { SafeString } from '../http/text'
import type { OwnerView } from './cluster'

export type ActorAdminRoutesDeps = {
  ownerOf: (userId: string) => Promise<OwnerView | undefined>
}

/** Mounted under /v1/admin behind the admin guard. */
export function actorAdminRoutes(deps: ActorAdminRoutesDeps) {
  return new Elysia({ detail: { tags: ['admin'] } }).get(
    '/actors/:userId',
    async ({ params }) => {
      // ids are keys as Postgres writes them (lowercase); a UUID is the same in any case
      const owner = await deps.ownerOf(params.userId.toLowerCase())
      if (!owner) throw new NotFound('Actor owner')
      return owner
    },
    {
      params: t.Object({ userId: SafeString({ format: 'uuid' }) }),
      detail: {
        summary: 'Which instance owns a user’s actor, with its fencing epoch',
        description:
          'Read from Postgres (actor_owners), so every instance gives the same answer; 404 when nobody owns it (never claimed, or released by a drain).',
      },
      response: {
        200: t.Object({
          userId: t.String(),
          owner: t.String({ description: 'the instance id' }),
          epoch: t.Integer({ minimum: 1 }),
          since: t.String({ description: 'when the owner claimed it (RFC 3339)' }),
        }),
        ...errors(401, 403, 404, 422),
      },
    },
  )
}
