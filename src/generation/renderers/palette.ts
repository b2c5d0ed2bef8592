import { hslToHex } from '../../media/colour'
import type { Random } from '../../media/seed'

/** The colours of one local render. */
export type Palette = {
  backdrop: [from: string, to: string]
  /** the figure's left limbs, right limbs and torso/head, as in COCO's left/right */
  left: string
  right: string
  centre: string
  joint: string
  shadow: string
  accents: string[]
}

/** 137.5°: consecutive variations land far apart on the colour wheel and never repeat exactly. */
const GOLDEN_ANGLE = 137.508

/**
 * A palette from a seeded random and the variation index: the variation
 * turns the base hue by the golden angle and alternates light and dark
 * backdrops, so neighbouring variations are obviously different pictures.
 */
export function makePalette(random: Random, variation: number): Palette {
  const hue = random.between(0, 360) + variation * GOLDEN_ANGLE
  const dark = variation % 2 === 1
  const figureLightness = dark ? 0.68 : 0.42
  return {
    backdrop: dark
      ? [hslToHex(hue + 200, 0.35, 0.12), hslToHex(hue + 240, 0.4, 0.24)]
      : [hslToHex(hue + 200, 0.4, 0.94), hslToHex(hue + 160, 0.45, 0.8)],
    left: hslToHex(hue, 0.75, figureLightness),
    right: hslToHex(hue + 60, 0.75, figureLightness),
    centre: hslToHex(hue + 30, 0.6, dark ? 0.85 : 0.25),
    joint: dark ? '#ffffff' : '#1d1d1f',
    shadow: dark ? '#000000' : hslToHex(hue + 200, 0.3, 0.35),
    accents: [0, 1, 2, 3, 4].map((i) =>
      hslToHex(hue + i * 72 + random.between(-12, 12), random.between(0.5, 0.85), 0.55),
    ),
  }
}
