import type { Keypoint, Visibility } from '../../src/library/keypoints'

/**
 * A small 3D stick figure turned into the 17 COCO keypoints.
 *
 * A pose is written in the person's own frame, before the camera sees it:
 * x = the person's left, y = up, z = the way they face; the hip centre is
 * the origin. Limb segments are directions in that frame, so "arm straight
 * up" is [0, 1, 0] whatever the camera does. The figure is then turned by
 * `yaw` (0 faces the camera, 90 faces image right) and `roll` (the whole
 * figure rotated counterclockwise in the picture: 90 lays a standing figure
 * down with its head to the left), projected orthographically, and fitted
 * into the unit square. Visibility comes from depth: a joint behind the
 * torso, the head or a nearer limb is 1 (labeled, hidden), a face point on
 * the far side of the head is 1, a joint cut off by a portrait crop is 0.
 */

export type V3 = [number, number, number]

export type Limb = [upper: V3, lower: V3]

export type PoseShape = {
  /** Degrees; 0 faces the camera, 90 faces image right, 180 shows the back. */
  yaw?: number
  /** Degrees, counterclockwise in the picture. */
  roll?: number
  /** Hip centre to neck; default straight up. */
  spine?: V3
  /** Shoulders turned against the hips about the spine, degrees (positive turns toward the left). */
  twist?: number
  /** Relative to the torso, degrees: yaw turns toward the left, pitch nods down, roll tilts toward the left shoulder. */
  head?: { yaw?: number; pitch?: number; roll?: number }
  leftArm?: Limb
  rightArm?: Limb
  leftLeg?: Limb
  rightLeg?: Limb
  /** 'waist' frames a half-length portrait: knees and ankles are out of frame (visibility 0). */
  crop?: 'full' | 'waist'
}

// body proportions, in units of standing height from ankle to nose (~0.92 of stature)
const HIP_HALF = 0.09
const SHOULDER_HALF = 0.12
const SPINE = 0.3
const NECK = 0.13
const UPPER_ARM = 0.17
const FOREARM = 0.155
const THIGH = 0.245
const SHIN = 0.245

export const HANGING_ARM: Limb = [
  [0.12, -1, 0],
  [0.06, -1, 0.12],
]
export const STRAIGHT_LEG: Limb = [
  [0.04, -1, 0],
  [0, -1, 0],
]

const add = (a: V3, b: V3): V3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
const scale = (a: V3, k: number): V3 => [a[0] * k, a[1] * k, a[2] * k]
const dot = (a: V3, b: V3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
const cross = (a: V3, b: V3): V3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
]
const unit = (a: V3): V3 => scale(a, 1 / Math.hypot(...a))
const rad = (deg: number) => (deg * Math.PI) / 180

/** The right side's direction for a left side's direction. */
export const mirror = (v: V3): V3 => [-v[0], v[1], v[2]]
export const mirrorLimb = (limb: Limb): Limb => [mirror(limb[0]), mirror(limb[1])]

/** Rotates v about a unit axis by deg (right-handed). */
function rotate(v: V3, axis: V3, deg: number): V3 {
  const c = Math.cos(rad(deg))
  const s = Math.sin(rad(deg))
  return add(add(scale(v, c), scale(cross(axis, v), s)), scale(axis, dot(axis, v) * (1 - c)))
}

type Frame = { left: V3; up: V3; forward: V3 }

function torsoFrame(shape: PoseShape): Frame {
  const up = unit(shape.spine ?? [0, 1, 0])
  // positive twist turns the chest toward the person's left: left goes back
  const twisted = rotate([1, 0, 0], [0, 1, 0], shape.twist ?? 0)
  const left = unit(add(twisted, scale(up, -dot(twisted, up))))
  return { left, up, forward: cross(left, up) }
}

function headFrame(torso: Frame, head: PoseShape['head'] = {}): Frame {
  let { left, up, forward } = torso
  const turn = (axis: V3, deg: number) => {
    left = rotate(left, axis, deg)
    up = rotate(up, axis, deg)
    forward = rotate(forward, axis, deg)
  }
  turn(torso.up, head.yaw ?? 0)
  turn(left, head.pitch ?? 0)
  turn(forward, -(head.roll ?? 0))
  return { left, up, forward }
}

export type Joint = { p: V3; face?: V3 }

/** The 17 joints in the person's frame, in COCO order; face points carry the direction they face. */
export function joints(shape: PoseShape): {
  points: Joint[]
  head: V3
  headTop: V3
  chest: V3
} {
  const torso = torsoFrame(shape)
  const neck = scale(torso.up, SPINE)
  const h = headFrame(torso, shape.head)
  const centre = add(neck, scale(h.up, NECK))
  const at = (l: number, u: number, f: number): V3 =>
    add(centre, add(scale(h.left, l), add(scale(h.up, u), scale(h.forward, f))))
  const facing = (l: number, f: number) => unit(add(scale(h.left, l), scale(h.forward, f)))

  const limb = (root: V3, [upper, lower]: Limb, a: number, b: number): [V3, V3] => {
    const mid = add(root, scale(unit(upper), a))
    return [mid, add(mid, scale(unit(lower), b))]
  }
  const lShoulder = add(neck, scale(torso.left, SHOULDER_HALF))
  const rShoulder = add(neck, scale(torso.left, -SHOULDER_HALF))
  const lHip: V3 = [HIP_HALF, 0, 0]
  const rHip: V3 = [-HIP_HALF, 0, 0]
  const [lElbow, lWrist] = limb(lShoulder, shape.leftArm ?? HANGING_ARM, UPPER_ARM, FOREARM)
  const [rElbow, rWrist] = limb(
    rShoulder,
    shape.rightArm ?? mirrorLimb(shape.leftArm ?? HANGING_ARM),
    UPPER_ARM,
    FOREARM,
  )
  const [lKnee, lAnkle] = limb(lHip, shape.leftLeg ?? STRAIGHT_LEG, THIGH, SHIN)
  const [rKnee, rAnkle] = limb(
    rHip,
    shape.rightLeg ?? mirrorLimb(shape.leftLeg ?? STRAIGHT_LEG),
    THIGH,
    SHIN,
  )
  const points: Joint[] = [
    { p: at(0, -0.015, 0.055), face: facing(0, 1) },
    { p: at(0.032, 0.012, 0.04), face: facing(0.6, 0.8) },
    { p: at(-0.032, 0.012, 0.04), face: facing(-0.6, 0.8) },
    { p: at(0.07, 0, -0.005), face: facing(0.95, -0.3) },
    { p: at(-0.07, 0, -0.005), face: facing(-0.95, -0.3) },
    ...[lShoulder, rShoulder, lElbow, rElbow, lWrist, rWrist].map((p) => ({ p })),
    ...[lHip, rHip, lKnee, rKnee, lAnkle, rAnkle].map((p) => ({ p })),
  ]
  return { points, head: centre, headTop: at(0, 0.11, 0), chest: torso.forward }
}

/** Person frame → camera: x right, y up, z toward the camera. */
export function camera(shape: PoseShape) {
  const yaw = rad(shape.yaw ?? 0)
  const roll = rad(shape.roll ?? 0)
  return (v: V3): V3 => {
    const x = v[0] * Math.cos(yaw) + v[2] * Math.sin(yaw)
    const z = -v[0] * Math.sin(yaw) + v[2] * Math.cos(yaw)
    const y = v[1]
    return [x * Math.cos(roll) - y * Math.sin(roll), x * Math.sin(roll) + y * Math.cos(roll), z]
  }
}
