import { Elysia, t } from 'elysia'
import { NotFound } from '../errors'
import { errors } from '../http/schemas'
import { JsonInteger, SafeString } from '../http/text'
import type { OwnerView } from './owner-view'

export type ActorAdminRoutesDeps = {
  ownerOf: (userId: string) => Promise<OwnerView | undefined>
  /** An explicit rebalance (rebalance.ts): the ownership given up; undefined: nobody owned it. */
  release: (userId: string) => Promise<OwnerView | undefined>
}

const UserParams = t.Object({ userId: SafeString({ format: 'uuid' }) })

const Ownership = (owner: string, since: string) =>
  t.Object({
    userId: t.String(),
    owner: t.String({ description: owner }),
    epoch: JsonInteger({ minimum: 1 }),
    since: t.String({ description: since }),
  })

/** Ids are keys as Postgres writes them (lowercase); a UUID is the same in any case. */
const keyOf = (userId: string) => userId.toLowerCase()

/** Mounted under /v1/admin behind the admin guard. */
export function actorAdminRoutes(deps: ActorAdminRoutesDeps) {
  return new Elysia({ detail: { tags: ['admin'] } })
    .get(
      '/actors/:userId',
      async ({ params }) => {
        const owner = await deps.ownerOf(keyOf(params.userId))
        if (!owner) throw new NotFound('Actor owner')
        return owner
      },
      {
        params: UserParams,
        detail: {
          summary: 'Which instance owns a user’s actor, with its fencing epoch',
          description:
            'Read from Postgres (actor_owners), so every instance gives the same answer; 404 when nobody owns it (never claimed, or released by a drain or a rebalance).',
        },
        response: {
          200: Ownership('the instance id', 'when the owner claimed it (RFC 3339)'),
          ...errors(401, 403, 404, 503),
        },
      },
    )
    .delete(
      '/actors/:userId',
      async ({ params }) => {
        const released = await deps.release(keyOf(params.userId))
        if (!released) throw new NotFound('Actor owner')
        return released
      },
      {
        params: UserParams,
        detail: {
          summary: 'Rebalance: the owner of a user’s actor gives it up',
          description:
            'Any instance takes it and asks the owner (read from Postgres), which finishes the batch in flight, releases the ownership and forwards what was queued for the user to another live instance; no command fails for it. Answered once that is done, with the ownership given up. Its epoch stays fenced: the next command, on any instance, claims the user there (local-first) with a higher epoch, and nothing written under the old one commits after that. 404 when nobody owns the user; 503 with Retry-After when its owner is alive but cannot be reached. A dead owner (no heartbeat) cannot release: the instance asked takes the user over with a higher epoch, fencing it, and releases it, answering the dead owner’s record.',
        },
        response: {
          200: Ownership(
            'the instance that gave it up',
            'when that instance had claimed it (RFC 3339)',
          ),
          ...errors(401, 403, 404, 503),
        },
      },
    )
}
