import type { Difficulty } from '../../src/library/table'
import type { Limb, PoseShape } from './skeleton'

/**
 * The seed library: categories, and the helpers the pose lists share.
 * Directions are in the person's frame (x = their left, y = up, z = forward),
 * written for the LEFT limb; `mirrorLimb` gives the right one.
 */

export const CATEGORIES = [
  { id: 'standing', name: 'Standing' },
  { id: 'sitting', name: 'Sitting' },
  { id: 'lying', name: 'Lying and floor' },
  { id: 'action', name: 'Action' },
  { id: 'sports', name: 'Sports' },
  { id: 'dance', name: 'Dance' },
  { id: 'yoga', name: 'Yoga' },
  { id: 'fitness', name: 'Fitness' },
  { id: 'portrait', name: 'Portrait' },
] as const

export type CategoryId = (typeof CATEGORIES)[number]['id']

export type PoseSpec = {
  /** Stable key: the pose's id is derived from it, so never rename one that shipped. */
  slug: string
  name: string
  difficulty: Difficulty
  tags: string[]
  shape: PoseShape
}

export function pose(
  slug: string,
  name: string,
  difficulty: Difficulty,
  tags: string[],
  shape: PoseShape,
): PoseSpec {
  return { slug, name, difficulty, tags, shape }
}

// arms
export const ARM_T: Limb = [
  [1, 0, 0],
  [1, 0, 0],
]
export const ARM_OVERHEAD: Limb = [
  [0.2, 1, 0],
  [0.1, 1, 0],
]
export const ARM_FORWARD: Limb = [
  [0.05, 0, 1],
  [0, 0, 1],
]
export const HAND_ON_HIP: Limb = [
  [0.6, -0.75, -0.2],
  [-0.6, -0.8, 0.2],
]
export const ARM_CROSSED: Limb = [
  [0.05, -0.85, 0.55],
  [-1, 0.3, 0.1],
]
export const HAND_IN_POCKET: Limb = [
  [0.15, -1, -0.15],
  [-0.2, -1, 0.5],
]
export const HANDS_BEHIND_HEAD: Limb = [
  [0.85, 0.55, -0.15],
  [-0.6, 0.5, -0.35],
]
export const GUARD: Limb = [
  [0.1, -0.8, 0.45],
  [-0.25, 0.9, 0.3],
]
export const RUN_ARM_BACK: Limb = [
  [0, -0.8, -0.6],
  [0, -0.6, 0.8],
]
export const RUN_ARM_FORWARD: Limb = [
  [0, -0.8, 0.6],
  [0, 0.6, 0.8],
]

// legs
export const LEG_WIDE: Limb = [
  [0.35, -1, 0],
  [0.25, -1, 0],
]
export const LEG_TOGETHER: Limb = [
  [0.01, -1, 0],
  [-0.01, -1, 0],
]
export const STEP_FORWARD: Limb = [
  [0.02, -0.95, 0.35],
  [0, -1, 0.12],
]
export const STEP_BACK: Limb = [
  [-0.02, -0.95, -0.3],
  [0, -0.85, -0.5],
]
export const CHAIR_LEG: Limb = [
  [0.12, -0.1, 1],
  [0.04, -1, 0.05],
]
export const KNEEL_LEG: Limb = [
  [0.06, -1, 0.05],
  [0, -0.08, -1],
]
