import {
  ARM_CROSSED,
  CHAIR_LEG,
  HAND_IN_POCKET,
  HAND_ON_HIP,
  HANDS_BEHIND_HEAD,
  STEP_BACK,
  STEP_FORWARD,
  pose,
  type PoseSpec,
} from './catalog'
import { HANGING_ARM, STRAIGHT_LEG, mirrorLimb, type Limb } from './skeleton'

/** Standing, sitting, lying and portrait poses. */

const HANDS_ON_THIGHS: Limb = [
  [0.05, -1, 0.3],
  [0, -0.3, 1],
]
const HANDS_IN_LAP: Limb = [
  [0.1, -1, 0.3],
  [-0.4, -0.3, 1],
]

export const STANDING: PoseSpec[] = [
  pose('relaxed-stand', 'Relaxed stand', 'easy', ['neutral', 'casual', 'reference'], {}),
  pose('contrapposto', 'Contrapposto', 'easy', ['classical', 'weight-shift', 'relaxed'], {
    yaw: 15,
    spine: [-0.06, 1, 0],
    head: { roll: 6 },
    leftLeg: [
      [0.1, -1, 0.14],
      [0.02, -1, -0.05],
    ],
    rightLeg: [
      [-0.1, -1, 0],
      [-0.02, -1, 0],
    ],
  }),
  pose('hands-on-hips', 'Hands on hips', 'easy', ['confident', 'power-pose', 'hero'], {
    leftArm: HAND_ON_HIP,
    leftLeg: [
      [0.18, -1, 0],
      [0.1, -1, 0],
    ],
  }),
  pose('arms-crossed', 'Arms crossed', 'easy', ['confident', 'closed', 'business'], {
    yaw: 20,
    leftArm: ARM_CROSSED,
  }),
  pose('hands-in-pockets', 'Hands in pockets', 'easy', ['casual', 'relaxed', 'street'], {
    yaw: -25,
    leftArm: HAND_IN_POCKET,
    leftLeg: [
      [0.08, -1, 0.05],
      [0.04, -1, 0],
    ],
  }),
  pose('walking-stride', 'Walking stride', 'easy', ['walk', 'motion', 'street'], {
    yaw: 90,
    leftLeg: STEP_FORWARD,
    rightLeg: mirrorLimb(STEP_BACK),
    leftArm: [
      [0.05, -1, -0.3],
      [0.02, -1, -0.05],
    ],
    rightArm: [
      [-0.05, -1, 0.35],
      [-0.02, -0.8, 0.6],
    ],
  }),
  pose('wall-lean', 'Leaning on a wall', 'medium', ['casual', 'lean', 'street'], {
    yaw: 80,
    spine: [0, 1, -0.15],
    leftArm: HAND_IN_POCKET,
    rightArm: mirrorLimb(HAND_IN_POCKET),
    leftLeg: [
      [0.02, -0.8, 0.6],
      [0, -0.7, -0.75],
    ],
    rightLeg: mirrorLimb(STRAIGHT_LEG),
  }),
  pose('over-the-shoulder', 'Looking over the shoulder', 'medium', ['back', 'glance', 'fashion'], {
    yaw: 150,
    twist: -25,
    head: { yaw: -70, pitch: 5 },
  }),
  pose('pointing-ahead', 'Pointing ahead', 'easy', ['gesture', 'direction', 'guide'], {
    yaw: 55,
    rightArm: [
      [-0.1, 0.15, 1],
      [-0.05, 0.2, 1],
    ],
    head: { yaw: -10 },
  }),
  pose('waving-hello', 'Waving hello', 'easy', ['gesture', 'greeting', 'friendly'], {
    yaw: -10,
    head: { roll: 6 },
    leftArm: [
      [0.85, 0.3, 0.1],
      [0.1, 1, 0.05],
    ],
    rightArm: mirrorLimb(HANGING_ARM),
  }),
  pose('phone-call', 'On a phone call', 'easy', ['phone', 'everyday', 'business'], {
    yaw: 25,
    head: { roll: -8 },
    rightArm: [
      [-0.5, -0.6, 0.6],
      [0.55, 0.8, -0.35],
    ],
    leftLeg: [
      [0.1, -1, 0.12],
      [0.03, -1, -0.04],
    ],
    rightLeg: mirrorLimb(STRAIGHT_LEG),
  }),
]

export const SITTING: PoseSpec[] = [
  pose('chair-upright', 'Sitting upright on a chair', 'easy', ['chair', 'office', 'neutral'], {
    yaw: 90,
    leftLeg: CHAIR_LEG,
    leftArm: HANDS_ON_THIGHS,
  }),
  pose('chair-legs-crossed', 'Sitting with legs crossed', 'easy', ['chair', 'relaxed', 'elegant'], {
    yaw: 35,
    spine: [0, 1, -0.08],
    leftLeg: [
      [-0.2, 0.08, 1],
      [-0.12, -1, 0.15],
    ],
    rightLeg: [
      [-0.1, -0.1, 1],
      [-0.04, -1, 0.05],
    ],
    leftArm: HANDS_IN_LAP,
  }),
  pose('cross-legged', 'Cross-legged on the floor', 'easy', ['floor', 'calm', 'meditation'], {
    leftLeg: [
      [0.85, -0.25, 0.45],
      [-0.9, -0.1, 0.35],
    ],
    leftArm: [
      [0.25, -1, 0.35],
      [0.35, -0.6, 0.6],
    ],
  }),
  pose('hugging-knees', 'Hugging knees', 'easy', ['floor', 'introspective', 'cozy'], {
    yaw: 80,
    spine: [0, 1, 0.25],
    head: { pitch: 10 },
    leftLeg: [
      [0.05, 1, 0.55],
      [0, -1, -0.1],
    ],
    leftArm: [
      [0.25, -0.9, 0.35],
      [-0.9, -0.2, 0.45],
    ],
  }),
  pose('leaning-back-on-hands', 'Leaning back on hands', 'easy', ['floor', 'relaxed', 'summer'], {
    yaw: 75,
    spine: [0, 1, -0.45],
    head: { pitch: -10 },
    leftLeg: [
      [0.05, -0.1, 1],
      [0.02, -0.1, 1],
    ],
    rightLeg: [
      [-0.05, 0.8, 0.8],
      [0, -1, 0.25],
    ],
    leftArm: [
      [0.1, -1, -0.5],
      [0.05, -1, -0.35],
    ],
  }),
  pose('the-thinker', 'The thinker', 'medium', ['chair', 'thoughtful', 'classical'], {
    yaw: 60,
    spine: [0, 1, 1],
    head: { pitch: -20 },
    leftLeg: CHAIR_LEG,
    rightArm: [
      [0.1, -0.85, 0.45],
      [0.45, 0.8, 0.45],
    ],
    leftArm: [
      [0.1, -0.9, 0.3],
      [0, -0.4, 1],
    ],
  }),
  pose('side-saddle', 'Side-saddle on the floor', 'medium', ['floor', 'elegant', 'graceful'], {
    yaw: 10,
    spine: [-0.22, 1, 0],
    head: { roll: 10 },
    leftLeg: [
      [-0.3, -0.35, 0.9],
      [-0.9, -0.1, -0.2],
    ],
    rightLeg: [
      [-0.6, -0.35, 0.7],
      [-0.8, -0.2, -0.35],
    ],
    rightArm: [
      [-0.45, -1, 0],
      [-0.3, -1, 0],
    ],
    leftArm: [
      [0.05, -1, 0.4],
      [-0.4, -0.6, 0.7],
    ],
  }),
  pose('stool-perch', 'Perched on a stool', 'easy', ['stool', 'casual', 'studio'], {
    yaw: 45,
    leftLeg: [
      [0.1, -0.3, 1],
      [0, -1, -0.25],
    ],
    rightLeg: [
      [-0.1, -0.3, 1],
      [0, -1, 0.3],
    ],
    leftArm: HANDS_IN_LAP,
  }),
  pose('seiza', 'Kneeling sit (seiza)', 'easy', ['floor', 'formal', 'calm'], {
    yaw: 90,
    leftLeg: [
      [0.06, -0.2, 1],
      [0, -0.15, -1],
    ],
    leftArm: HANDS_ON_THIGHS,
  }),
]

export const LYING: PoseSpec[] = [
  pose('lying-on-back', 'Lying on the back', 'easy', ['floor', 'rest', 'side-view'], {
    yaw: 90,
    roll: 90,
    leftArm: [
      [0.1, -1, 0.05],
      [0.05, -1, 0.05],
    ],
  }),
  pose(
    'propped-on-elbow',
    'Lying on the side, propped on an elbow',
    'medium',
    ['floor', 'relaxed', 'glamour'],
    {
      roll: 90,
      spine: [0.35, 1, 0],
      rightArm: [
        [-0.2, 1, 0.2],
        [0.75, 0.6, 0],
      ],
      leftArm: [
        [0.3, -1, 0.2],
        [0.1, -1, 0.3],
      ],
      leftLeg: [
        [0.05, -0.9, 0.45],
        [0, -1, -0.1],
      ],
      rightLeg: [
        [-0.02, -1, 0],
        [0, -1, 0],
      ],
    },
  ),
  pose(
    'prone-chin-on-hands',
    'On the stomach, chin on hands',
    'easy',
    ['floor', 'playful', 'reading'],
    {
      yaw: -90,
      roll: 90,
      spine: [0, 1, -0.35],
      head: { pitch: -15 },
      leftArm: [
        [0.2, 0.5, 0.85],
        [-0.4, 0.6, -0.7],
      ],
      leftLeg: [
        [0.03, -1, 0],
        [0, -0.3, -1],
      ],
      rightLeg: [
        [-0.03, -1, 0],
        [0, -0.7, -0.7],
      ],
    },
  ),
  pose('snow-angel', 'Snow angel (from above)', 'easy', ['floor', 'playful', 'top-down'], {
    roll: 90,
    leftArm: [
      [1, 0.5, 0],
      [1, 0.6, 0],
    ],
    leftLeg: [
      [0.45, -1, 0],
      [0.4, -1, 0],
    ],
  }),
  pose(
    'knees-up-hands-behind-head',
    'On the back, knees up',
    'easy',
    ['floor', 'rest', 'daydream'],
    {
      yaw: 90,
      roll: 90,
      leftArm: HANDS_BEHIND_HEAD,
      leftLeg: [
        [0.05, -0.7, 0.7],
        [0, -0.7, -0.7],
      ],
    },
  ),
  pose('fetal-curl', 'Curled on the side (from above)', 'easy', ['floor', 'sleep', 'top-down'], {
    yaw: 90,
    roll: 90,
    spine: [0, 1, 0.3],
    head: { pitch: 25 },
    leftArm: [
      [0, -0.5, 0.9],
      [0, 0.7, 0.6],
    ],
    leftLeg: [
      [0, 0.2, 1],
      [0, -1, 0.1],
    ],
  }),
]

const WAIST = { crop: 'waist' } as const

export const PORTRAIT: PoseSpec[] = [
  pose('portrait-front', 'Facing the camera', 'easy', ['headshot', 'neutral', 'id'], { ...WAIST }),
  pose('portrait-three-quarter', 'Three-quarter, chin down', 'easy', ['headshot', 'classic'], {
    ...WAIST,
    yaw: 35,
    head: { pitch: 8 },
  }),
  pose('portrait-profile', 'Profile', 'easy', ['headshot', 'silhouette', 'classic'], {
    ...WAIST,
    yaw: 90,
  }),
  pose(
    'portrait-chin-on-hand',
    'Chin resting on a hand',
    'easy',
    ['thoughtful', 'table', 'candid'],
    {
      ...WAIST,
      yaw: 15,
      head: { roll: 8 },
      rightArm: [
        [-0.05, -0.3, 1],
        [0.6, 0.7, -0.45],
      ],
      leftArm: [
        [0.1, -0.5, 1],
        [-1, 0, 0.2],
      ],
    },
  ),
  pose('portrait-arms-folded', 'Arms folded', 'easy', ['business', 'confident', 'team-page'], {
    ...WAIST,
    yaw: 25,
    leftArm: ARM_CROSSED,
  }),
  pose('portrait-glance-back', 'Glance back over the shoulder', 'medium', ['fashion', 'glance'], {
    ...WAIST,
    yaw: 160,
    twist: -15,
    head: { yaw: -80 },
  }),
  pose('portrait-hands-framing-face', 'Hands framing the face', 'easy', ['beauty', 'playful'], {
    ...WAIST,
    leftArm: [
      [0.25, -0.3, 0.9],
      [-0.35, 0.9, -0.1],
    ],
  }),
  pose(
    'portrait-hand-in-hair',
    'Hand in hair, head tilted',
    'easy',
    ['fashion', 'beauty', 'relaxed'],
    {
      ...WAIST,
      yaw: 10,
      head: { roll: 12 },
      leftArm: [
        [0.75, 0.6, 0.1],
        [-0.7, 0.6, -0.3],
      ],
      rightArm: mirrorLimb(HANGING_ARM),
    },
  ),
  pose('portrait-looking-up', 'Looking up', 'easy', ['hopeful', 'dreamy', 'sky'], {
    ...WAIST,
    yaw: -20,
    head: { pitch: -25 },
  }),
]
