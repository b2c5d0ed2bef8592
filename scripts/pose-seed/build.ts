import { createHash } from 'node:crypto'
import type { Keypoint } from '../../src/library/keypoints'
import type { Difficulty } from '../../src/library/table'
import { CATEGORIES, type CategoryId, type PoseSpec } from './catalog'
import { keypointsOf } from './project'
import { ACTION, DANCE, FITNESS, SPORTS, YOGA } from './poses-movement'
import { LYING, PORTRAIT, SITTING, STANDING } from './poses-everyday'

/** The seed as rows: ids, view tags and keypoints derived from the catalog. */

export type SeedPose = {
  id: string
  slug: string
  name: string
  category: CategoryId
  tags: string[]
  difficulty: Difficulty
  keypoints: Keypoint[]
}

const BY_CATEGORY: Record<CategoryId, PoseSpec[]> = {
  standing: STANDING,
  sitting: SITTING,
  lying: LYING,
  action: ACTION,
  sports: SPORTS,
  dance: DANCE,
  yoga: YOGA,
  fitness: FITNESS,
  portrait: PORTRAIT,
}

// ids are UUIDv5 (RFC 9562) of the slug under this namespace: stable across runs and installs
const NAMESPACE = '6f1c8c9e-3b1a-4f57-9a43-2b7d2a6f0c11'

export function uuidV5(name: string, namespace = NAMESPACE): string {
  const ns = Buffer.from(namespace.replaceAll('-', ''), 'hex')
  const bytes = createHash('sha1').update(ns).update(name).digest().subarray(0, 16)
  bytes[6] = (bytes[6]! & 0x0f) | 0x50
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Camera-angle tags from the figure's yaw and crop, so the later tag filter can find views. */
function viewTags(spec: PoseSpec): string[] {
  // degrees away from facing the camera, 0..180
  const away = Math.abs(((((spec.shape.yaw ?? 0) % 360) + 540) % 360) - 180)
  const view =
    away <= 20
      ? 'front-view'
      : away < 70
        ? 'three-quarter-view'
        : away <= 110
          ? 'side-view'
          : 'back-view'
  return spec.shape.crop === 'waist' ? [view, 'half-length'] : [view]
}

export function buildSeed(): { categories: typeof CATEGORIES; poses: SeedPose[] } {
  const poses = CATEGORIES.flatMap(({ id }) =>
    BY_CATEGORY[id].map((spec): SeedPose => ({
      id: uuidV5(`pose:${spec.slug}`),
      slug: spec.slug,
      name: spec.name,
      category: id,
      tags: [...new Set([...spec.tags, ...viewTags(spec)])],
      difficulty: spec.difficulty,
      keypoints: keypointsOf(spec.shape),
    })),
  )
  const slugs = new Set(poses.map((p) => p.slug))
  const names = new Set(poses.map((p) => p.name.toLowerCase()))
  if (slugs.size !== poses.length || names.size !== poses.length)
    throw new Error('pose slugs and names must be unique')
  return { categories: CATEGORIES, poses }
}
