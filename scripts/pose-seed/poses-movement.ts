import {
  ARM_FORWARD,
  ARM_OVERHEAD,
  ARM_T,
  GUARD,
  HAND_ON_HIP,
  HANDS_BEHIND_HEAD,
  KNEEL_LEG,
  LEG_TOGETHER,
  LEG_WIDE,
  RUN_ARM_BACK,
  RUN_ARM_FORWARD,
  STEP_BACK,
  STEP_FORWARD,
  pose,
  type PoseSpec,
} from './catalog'
import { STRAIGHT_LEG, mirrorLimb } from './skeleton'

/** Action, sports, dance, yoga and fitness poses. */

export const ACTION: PoseSpec[] = [
  pose('running', 'Running', 'medium', ['run', 'motion', 'athletic'], {
    yaw: 90,
    spine: [0, 1, 0.2],
    leftLeg: [
      [0, -0.5, 0.9],
      [0, -1, -0.15],
    ],
    rightLeg: [
      [0, -0.85, -0.5],
      [0, -0.2, -1],
    ],
    leftArm: RUN_ARM_BACK,
    rightArm: mirrorLimb(RUN_ARM_FORWARD),
  }),
  pose('sprint-start', 'Sprint start', 'hard', ['run', 'crouch', 'athletic'], {
    yaw: 90,
    spine: [0, 0.25, 1],
    head: { pitch: -10 },
    leftArm: [
      [0.05, -1, 0.1],
      [0, -1, 0],
    ],
    leftLeg: [
      [0.03, -0.2, 1],
      [0, -1, -0.3],
    ],
    rightLeg: [
      [-0.03, -0.9, -0.2],
      [0, -0.1, -1],
    ],
  }),
  pose('star-jump', 'Star jump', 'easy', ['jump', 'joy', 'energy'], {
    leftArm: [
      [0.75, 0.65, 0],
      [0.6, 0.8, 0],
    ],
    leftLeg: [
      [0.4, -1, 0],
      [0.35, -1, 0],
    ],
  }),
  pose('boxing-jab', 'Boxing jab', 'medium', ['fight', 'boxing', 'punch'], {
    yaw: 60,
    twist: -15,
    spine: [0, 1, 0.12],
    leftArm: [
      [0, 0.08, 1],
      [0, 0.05, 1],
    ],
    rightArm: mirrorLimb(GUARD),
    leftLeg: [
      [0.05, -1, 0.25],
      [0, -1, 0.05],
    ],
    rightLeg: [
      [-0.1, -1, -0.3],
      [0, -1, -0.1],
    ],
  }),
  pose('front-kick', 'Front kick', 'hard', ['fight', 'martial-arts', 'kick'], {
    yaw: 90,
    spine: [0, 1, -0.2],
    leftLeg: [
      [0, 0.2, 1],
      [0, 0.3, 1],
    ],
    rightLeg: [
      [-0.02, -1, 0.08],
      [0, -1, -0.05],
    ],
    leftArm: GUARD,
  }),
  pose('overhand-throw', 'Overhand throw', 'medium', ['throw', 'wind-up', 'motion'], {
    yaw: 75,
    twist: -30,
    rightArm: [
      [-0.9, 0.2, -0.3],
      [0, 1, -0.2],
    ],
    leftArm: [
      [0.3, 0.1, 1],
      [0.2, 0.3, 1],
    ],
    leftLeg: STEP_FORWARD,
    rightLeg: [
      [-0.1, -0.95, -0.3],
      [0, -1, -0.15],
    ],
  }),
  pose('climbing-reach', 'Climbing reach', 'medium', ['climb', 'reach', 'back-view'], {
    yaw: 180,
    leftArm: [
      [0.3, 1, 0.1],
      [0.1, 1, 0.1],
    ],
    rightArm: [
      [-0.6, 0.4, 0.2],
      [-0.1, 1, 0.1],
    ],
    leftLeg: [
      [0.25, -0.1, 0.9],
      [0, -1, 0.1],
    ],
    rightLeg: mirrorLimb(STRAIGHT_LEG),
  }),
  pose('superhero-landing', 'Superhero landing', 'hard', ['hero', 'landing', 'dramatic'], {
    yaw: 55,
    spine: [0, 0.8, 0.6],
    head: { pitch: -25 },
    rightArm: [
      [-0.15, -1, 0.3],
      [0, -1, 0],
    ],
    leftArm: [
      [0.8, 0.1, -0.6],
      [0.6, 0.2, -0.8],
    ],
    leftLeg: [
      [0.25, -0.2, 1],
      [0, -1, 0],
    ],
    rightLeg: KNEEL_LEG,
  }),
  pose('carrying-a-box', 'Carrying a box', 'easy', ['carry', 'everyday', 'work'], {
    yaw: 30,
    spine: [0, 1, -0.08],
    leftArm: [
      [0.2, -0.8, 0.55],
      [-0.05, 0.1, 1],
    ],
  }),
]

export const SPORTS: PoseSpec[] = [
  pose('tennis-forehand', 'Tennis forehand', 'medium', ['tennis', 'racket', 'swing'], {
    yaw: 80,
    twist: 40,
    rightArm: [
      [-1, -0.1, 0.3],
      [-0.7, 0, 0.7],
    ],
    leftArm: [
      [0.3, 0, 1],
      [0.4, 0, 0.9],
    ],
    leftLeg: [
      [0.3, -1, 0.1],
      [0.1, -1, 0],
    ],
  }),
  pose('jump-shot', 'Basketball jump shot', 'medium', ['basketball', 'jump', 'shoot'], {
    yaw: 30,
    rightArm: [
      [-0.2, 0.9, 0.4],
      [0, 1, 0.2],
    ],
    leftArm: [
      [0.3, 0.9, 0.3],
      [-0.4, 0.8, 0.3],
    ],
    leftLeg: [
      [0.05, -1, 0.05],
      [0, -1, -0.12],
    ],
  }),
  pose('soccer-kick', 'Soccer kick', 'medium', ['soccer', 'football', 'kick'], {
    yaw: 90,
    spine: [0, 1, -0.15],
    rightLeg: [
      [0, -0.6, 0.8],
      [0, -0.4, 0.9],
    ],
    leftLeg: [
      [0.02, -1, 0.1],
      [0, -1, -0.05],
    ],
    leftArm: [
      [0.8, -0.3, 0.3],
      [0.8, 0.1, 0.2],
    ],
    rightArm: [
      [-0.7, -0.5, -0.4],
      [-0.5, -0.6, -0.2],
    ],
  }),
  pose('golf-backswing', 'Golf backswing', 'hard', ['golf', 'swing', 'twist'], {
    spine: [0, 1, 0.45],
    twist: -45,
    leftArm: [
      [-0.6, 0.6, 0.2],
      [-0.5, 0.8, 0.1],
    ],
    rightArm: [
      [-0.9, 0.2, -0.2],
      [0.1, 0.9, 0.2],
    ],
    leftLeg: [
      [0.2, -1, 0.15],
      [0.05, -1, 0],
    ],
  }),
  pose('batting-stance', 'Batting stance', 'medium', ['baseball', 'bat', 'ready'], {
    spine: [0, 1, 0.3],
    head: { yaw: 70 },
    leftArm: [
      [-0.4, -0.3, 0.8],
      [-0.6, 0.6, 0.2],
    ],
    rightArm: [
      [-0.5, -0.6, 0.3],
      [0.1, 0.8, 0.4],
    ],
    leftLeg: [
      [0.35, -1, 0.15],
      [0.05, -1, -0.05],
    ],
    rightLeg: [
      [-0.3, -1, 0.15],
      [-0.05, -1, -0.05],
    ],
  }),
  pose('volleyball-dig', 'Volleyball dig', 'medium', ['volleyball', 'ready', 'crouch'], {
    yaw: 45,
    spine: [0, 1, 0.4],
    leftArm: [
      [-0.2, -0.6, 0.8],
      [-0.15, -0.5, 0.85],
    ],
    leftLeg: [
      [0.4, -0.7, 0.5],
      [0.1, -1, -0.2],
    ],
  }),
  pose('swim-dive-start', 'Swimming dive start', 'medium', ['swimming', 'dive', 'crouch'], {
    yaw: 90,
    spine: [0, 0.6, 1],
    leftArm: [
      [0, -0.3, 1],
      [0, -0.3, 1],
    ],
    leftLeg: [
      [0, -0.9, 0.4],
      [0, -1, -0.3],
    ],
  }),
  pose('cycling', 'Cycling', 'medium', ['bike', 'road', 'seated'], {
    yaw: 90,
    spine: [0, 0.7, 1],
    leftArm: [
      [0, -0.7, 0.7],
      [0, -0.3, 1],
    ],
    leftLeg: [
      [0, -0.3, 1],
      [0, -1, -0.05],
    ],
    rightLeg: [
      [0, -0.85, 0.5],
      [0, -1, -0.3],
    ],
  }),
]

export const DANCE: PoseSpec[] = [
  pose('arabesque', 'Ballet arabesque', 'hard', ['ballet', 'balance', 'classical'], {
    yaw: 90,
    spine: [0, 1, 0.25],
    rightLeg: [
      [0, 0.05, -1],
      [0, 0.1, -1],
    ],
    leftLeg: LEG_TOGETHER,
    leftArm: [
      [0, 0.2, 1],
      [0, 0.25, 1],
    ],
    rightArm: [
      [-1, 0.1, -0.3],
      [-1, 0.1, -0.2],
    ],
  }),
  pose('arms-en-haut', 'Fifth position, arms en haut', 'medium', ['ballet', 'classical'], {
    leftArm: [
      [0.6, 0.8, 0.2],
      [-0.85, 0.5, 0.1],
    ],
    leftLeg: LEG_TOGETHER,
  }),
  pose('plie-second', 'Plié in second', 'medium', ['ballet', 'turnout', 'classical'], {
    leftLeg: [
      [0.75, -0.65, 0.15],
      [0, -1, 0],
    ],
    leftArm: [
      [1, -0.1, 0.15],
      [1, -0.15, 0.25],
    ],
  }),
  pose('salsa-turn', 'Salsa turn', 'medium', ['salsa', 'latin', 'partner'], {
    yaw: 30,
    leftArm: [
      [0.2, 1, 0.1],
      [-0.5, 0.8, 0],
    ],
    rightArm: mirrorLimb(HAND_ON_HIP),
    rightLeg: [
      [0.1, -1, 0.15],
      [0.05, -1, 0],
    ],
  }),
  pose('disco-point', 'Disco point', 'easy', ['disco', 'retro', 'fun'], {
    yaw: 15,
    spine: [-0.1, 1, 0],
    rightArm: [
      [-0.5, 0.85, 0.1],
      [-0.5, 0.85, 0.1],
    ],
    leftArm: [
      [0.45, -0.9, 0.15],
      [0.45, -0.9, 0.1],
    ],
    leftLeg: LEG_WIDE,
    rightLeg: [
      [-0.05, -1, 0],
      [0, -1, 0],
    ],
  }),
  pose('toprock', 'Breakdance toprock', 'medium', ['hip-hop', 'breaking', 'street'], {
    yaw: 20,
    spine: [0, 1, 0.2],
    leftLeg: [
      [-0.25, -1, 0.2],
      [0, -1, 0.1],
    ],
    rightLeg: [
      [-0.15, -1, -0.1],
      [-0.05, -1, -0.05],
    ],
    leftArm: [
      [0.6, -0.5, 0.4],
      [0.2, 0.6, 0.6],
    ],
    rightArm: [
      [-0.7, -0.6, 0],
      [-0.5, -0.2, 0.6],
    ],
  }),
  pose('grand-jete', 'Grand jeté', 'hard', ['ballet', 'leap', 'split'], {
    yaw: 90,
    leftLeg: [
      [0, 0.1, 1],
      [0, 0.05, 1],
    ],
    rightLeg: [
      [0, 0.1, -1],
      [0, 0.15, -1],
    ],
    leftArm: [
      [0.3, 0.5, 0.8],
      [0.2, 0.5, 0.8],
    ],
    rightArm: [
      [-1, 0.3, 0],
      [-1, 0.3, 0],
    ],
  }),
  pose('flamenco', 'Flamenco', 'medium', ['flamenco', 'spanish', 'proud'], {
    yaw: 40,
    spine: [0, 1, -0.1],
    leftArm: [
      [0.5, 0.85, 0],
      [-0.5, 0.7, 0.2],
    ],
    rightArm: [
      [-0.4, -0.8, -0.4],
      [0.6, 0.1, -0.4],
    ],
    leftLeg: [
      [0.05, -1, 0.2],
      [0, -1, 0.15],
    ],
    rightLeg: mirrorLimb(STRAIGHT_LEG),
  }),
  pose('pirouette-passe', 'Pirouette in passé', 'hard', ['ballet', 'turn', 'balance'], {
    yaw: 10,
    leftLeg: [
      [0.8, -0.1, 0.4],
      [-0.75, -0.6, -0.1],
    ],
    rightLeg: LEG_TOGETHER,
    leftArm: [
      [0.3, -0.5, 0.8],
      [-0.8, 0, 0.4],
    ],
  }),
]

export const YOGA: PoseSpec[] = [
  pose('mountain', 'Mountain (Tadasana)', 'easy', ['standing', 'grounding', 'beginner'], {
    leftArm: [
      [0.08, -1, 0],
      [0.05, -1, 0],
    ],
    leftLeg: LEG_TOGETHER,
  }),
  pose('tree', 'Tree (Vrksasana)', 'medium', ['balance', 'standing', 'focus'], {
    leftLeg: [
      [0.65, -0.5, 0.55],
      [-1, -0.1, -0.35],
    ],
    rightLeg: [
      [-0.02, -1, 0],
      [0, -1, 0],
    ],
    leftArm: [
      [0.3, 1, 0.05],
      [-1, 0.3, 0],
    ],
  }),
  pose('warrior-two', 'Warrior II (Virabhadrasana II)', 'medium', ['standing', 'strength'], {
    head: { yaw: 80 },
    leftArm: ARM_T,
    leftLeg: [
      [0.9, -0.75, 0],
      [0.05, -1, 0],
    ],
    rightLeg: [
      [-0.65, -1, 0],
      [-0.65, -1, 0],
    ],
  }),
  pose('downward-dog', 'Downward dog (Adho Mukha Svanasana)', 'medium', ['inversion', 'stretch'], {
    yaw: 90,
    spine: [0, -0.7, 1],
    leftArm: [
      [0, -0.8, 0.6],
      [0, -0.8, 0.6],
    ],
    leftLeg: [
      [0, -1, -0.6],
      [0, -1, -0.6],
    ],
  }),
  pose('childs-pose', "Child's pose (Balasana)", 'easy', ['rest', 'stretch', 'beginner'], {
    yaw: 90,
    spine: [0, -0.35, 1],
    leftArm: [
      [0, -0.2, 1],
      [0, -0.1, 1],
    ],
    leftLeg: [
      [0, -0.55, 0.85],
      [0, -0.1, -1],
    ],
  }),
  pose('cobra', 'Cobra (Bhujangasana)', 'easy', ['backbend', 'prone', 'beginner'], {
    yaw: 90,
    roll: -90,
    spine: [0, 1, -0.8],
    head: { pitch: -20 },
    leftArm: [
      [0.1, -0.5, 0.85],
      [0, 0.45, 0.9],
    ],
  }),
  pose('triangle', 'Triangle (Trikonasana)', 'medium', ['standing', 'stretch', 'side-bend'], {
    spine: [0.75, 0.65, 0],
    head: { roll: 30 },
    leftArm: [
      [0.05, -1, 0],
      [0.05, -1, 0],
    ],
    rightArm: [
      [0.05, 1, 0],
      [0.05, 1, 0],
    ],
    leftLeg: [
      [0.55, -1, 0],
      [0.5, -1, 0],
    ],
  }),
  pose('boat', 'Boat (Navasana)', 'hard', ['core', 'balance', 'seated'], {
    yaw: 90,
    spine: [0, 1, -0.6],
    leftLeg: [
      [0, 0.7, 0.7],
      [0, 0.7, 0.7],
    ],
    leftArm: ARM_FORWARD,
  }),
  pose('bridge', 'Bridge (Setu Bandhasana)', 'medium', ['backbend', 'supine', 'glutes'], {
    yaw: 90,
    roll: 90,
    spine: [0, 1, -0.7],
    head: { pitch: 35 },
    leftArm: [
      [0.05, -1, 0],
      [0.03, -1, 0],
    ],
    leftLeg: [
      [0, -1, 0.25],
      [0, -0.1, -1],
    ],
  }),
  pose('crow', 'Crow (Bakasana)', 'hard', ['arm-balance', 'strength', 'advanced'], {
    yaw: 90,
    spine: [0, -0.3, 1],
    head: { pitch: -30 },
    leftArm: [
      [0.1, -1, 0.15],
      [0, -1, 0],
    ],
    leftLeg: [
      [0.2, -0.35, 1],
      [0, 0.4, -1],
    ],
  }),
]

export const FITNESS: PoseSpec[] = [
  pose('push-up', 'Push-up', 'medium', ['strength', 'bodyweight', 'plank'], {
    // body 20 degrees off the floor: arms vertical in the world are [0, -sin 20, cos 20] here
    yaw: 90,
    roll: -70,
    leftArm: [
      [0.1, -0.34, 0.94],
      [0.05, -0.34, 0.94],
    ],
  }),
  pose('forearm-plank', 'Forearm plank', 'medium', ['core', 'bodyweight', 'hold'], {
    // body 12 degrees off the floor, upper arms vertical, forearms flat on the floor
    yaw: 90,
    roll: -78,
    leftArm: [
      [0.1, -0.21, 0.98],
      [0, 0.98, 0.21],
    ],
  }),
  pose('bodyweight-squat', 'Bodyweight squat', 'medium', ['legs', 'strength', 'squat'], {
    yaw: 60,
    spine: [0, 1, 0.55],
    leftArm: ARM_FORWARD,
    leftLeg: [
      [0.25, -0.15, 1],
      [0.05, -1, -0.3],
    ],
  }),
  pose('forward-lunge', 'Forward lunge', 'easy', ['legs', 'balance', 'lunge'], {
    yaw: 80,
    leftArm: HAND_ON_HIP,
    leftLeg: [
      [0.05, -0.05, 1],
      [0, -1, 0.02],
    ],
    rightLeg: [
      [-0.05, -0.9, -0.45],
      [0, -0.15, -1],
    ],
  }),
  pose('bicep-curl', 'Bicep curl', 'easy', ['arms', 'dumbbell', 'gym'], {
    yaw: 45,
    leftArm: [
      [0.1, -1, 0],
      [0.05, 0.6, 0.8],
    ],
  }),
  pose('overhead-press', 'Overhead press', 'easy', ['shoulders', 'gym', 'press'], {
    leftArm: [
      [1, -0.1, 0],
      [0, 1, 0],
    ],
    leftLeg: [
      [0.15, -1, 0],
      [0.1, -1, 0],
    ],
  }),
  pose('crunch', 'Crunch', 'easy', ['core', 'floor', 'abs'], {
    yaw: 90,
    roll: 90,
    spine: [0, 1, 0.7],
    leftArm: HANDS_BEHIND_HEAD,
    leftLeg: [
      [0.05, -0.7, 0.7],
      [0, -0.7, -0.7],
    ],
  }),
  pose('deadlift', 'Deadlift hinge', 'medium', ['barbell', 'hinge', 'gym'], {
    yaw: 90,
    spine: [0, 0.55, 1],
    leftArm: [
      [0, -1, 0],
      [0, -1, 0],
    ],
    leftLeg: [
      [0, -1, 0.15],
      [0, -1, -0.1],
    ],
  }),
  pose('jumping-jack-up', 'Jumping jack', 'easy', ['cardio', 'warm-up', 'jump'], {
    leftArm: ARM_OVERHEAD,
    leftLeg: LEG_WIDE,
  }),
]
