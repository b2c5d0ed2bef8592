import type { Kysely } from 'kysely'
import type { DB } from '../../db/schema'
import { PermanentError } from '../../errors'
import type { ProduceContext } from '../produce'
import type { GenerationItemRow, GenerationRequest } from '../table'
import { requestOf } from './repository'

/**
 * What an item needs to be rendered: its generation's request and its pose.
 * Neither changes once written, so each is read once, not once per item, and
 * kept in a small bounded cache (the oldest entry goes when it is full).
 */
const CACHE_SIZE = 1000

export type ItemContexts = ReturnType<typeof makeItemContexts>

export function makeItemContexts(deps: {
  db: Kysely<DB>
  loadPose: (poseId: string) => Promise<ProduceContext['pose']>
}) {
  const requests = new Map<string, GenerationRequest>()
  const poses = new Map<string, ProduceContext['pose']>()

  return async function contextOf(item: GenerationItemRow): Promise<ProduceContext> {
    let request = requests.get(item.generation_id)
    if (!request) {
      request = await requestOf(deps.db, item.generation_id)
      remember(requests, item.generation_id, request)
    }
    let pose = item.pose_id ? poses.get(item.pose_id) : undefined
    if (item.pose_id && !pose) {
      pose = await deps.loadPose(item.pose_id)
      if (!pose) throw new PermanentError('pose_missing', 'The pose of this item no longer exists')
      remember(poses, item.pose_id, pose)
    }
    return { item, request, pose }
  }
}

function remember<V>(cache: Map<string, V>, key: string, value: V) {
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!)
  cache.set(key, value)
}
