import { Kind, TypeRegistry } from '@sinclair/typebox'
import { t } from 'elysia'
import type { ValidationIssue } from '../errors'

/**
 * A pose's skeleton: the 17 COCO keypoints in COCO's order, each
 * `[x, y, visibility]` with x and y normalized to 0..1 of a square frame
 * (x to the right, y down). Visibility as in COCO: 0 not labeled (out of
 * frame; x = y = 0), 1 labeled but hidden (behind the body), 2 visible.
 */
export const COCO_KEYPOINTS = [
  'nose',
  'left_eye',
  'right_eye',
  'left_ear',
  'right_ear',
  'left_shoulder',
  'right_shoulder',
  'left_elbow',
  'right_elbow',
  'left_wrist',
  'right_wrist',
  'left_hip',
  'right_hip',
  'left_knee',
  'right_knee',
  'left_ankle',
  'right_ankle',
] as const

export type KeypointName = (typeof COCO_KEYPOINTS)[number]
export type Visibility = 0 | 1 | 2
export type Keypoint = [x: number, y: number, visibility: Visibility]

/** COCO's limb pairs (indexes into COCO_KEYPOINTS), for drawing a figure. */
export const COCO_SKELETON: ReadonlyArray<readonly [number, number]> = [
  [15, 13],
  [13, 11],
  [16, 14],
  [14, 12],
  [11, 12],
  [5, 11],
  [6, 12],
  [5, 6],
  [5, 7],
  [6, 8],
  [7, 9],
  [8, 10],
  [1, 2],
  [0, 1],
  [0, 2],
  [1, 3],
  [2, 4],
  [3, 5],
  [4, 6],
]

function isUnit(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 1
}

export function isKeypoint(value: unknown): value is Keypoint {
  return (
    Array.isArray(value) &&
    value.length === 3 &&
    isUnit(value[0]) &&
    isUnit(value[1]) &&
    (value[2] === 0 || value[2] === 1 || value[2] === 2)
  )
}

/**
 * Issues with `value` as a pose's keypoints, each with a JSON pointer under
 * `path`; empty when valid. For admin writes: throw `ValidationFailed(issues)`.
 */
export function validateKeypoints(value: unknown, path = '/keypoints'): ValidationIssue[] {
  if (!Array.isArray(value)) return [{ path, message: 'Expected an array of 17 keypoints' }]
  if (value.length !== COCO_KEYPOINTS.length)
    return [{ path, message: `Expected 17 keypoints (COCO order), got ${value.length}` }]
  const issues: ValidationIssue[] = []
  value.forEach((point: unknown, i) => {
    const at = `${path}/${i}`
    const name = COCO_KEYPOINTS[i]
    if (!Array.isArray(point) || point.length !== 3) {
      issues.push({ path: at, message: `${name}: expected [x, y, visibility]` })
      return
    }
    if (!isUnit(point[0])) issues.push({ path: `${at}/0`, message: `${name}: x must be in 0..1` })
    if (!isUnit(point[1])) issues.push({ path: `${at}/1`, message: `${name}: y must be in 0..1` })
    if (point[2] !== 0 && point[2] !== 1 && point[2] !== 2)
      issues.push({ path: `${at}/2`, message: `${name}: visibility must be 0, 1 or 2` })
  })
  return issues
}

// A TypeBox tuple renders as `items: [...]`, which OpenAPI 3.1 (JSON Schema
// 2020-12) does not allow; this kind validates with isKeypoint and documents
// itself with `prefixItems`. `items` is a schema, not `false`, because
// Elysia's response normalizer (exact-mirror) reads `items.type`.
TypeRegistry.Set('CocoKeypoint', (_schema, value) => isKeypoint(value))

export const KeypointSchema = t.Unsafe<Keypoint>({
  [Kind]: 'CocoKeypoint',
  type: 'array',
  description: '[x, y, visibility]: x, y in 0..1 (x right, y down); visibility 0, 1 or 2 (COCO)',
  prefixItems: [
    { type: 'number', minimum: 0, maximum: 1 },
    { type: 'number', minimum: 0, maximum: 1 },
    { type: 'integer', enum: [0, 1, 2] },
  ],
  items: { type: 'number' },
  minItems: 3,
  maxItems: 3,
})

export const KeypointsSchema = t.Array(KeypointSchema, {
  minItems: 17,
  maxItems: 17,
  description: `The 17 COCO keypoints in order: ${COCO_KEYPOINTS.join(', ')}`,
})
