import { PermanentError } from '../errors'

const HEX_COLOUR = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/

/** `#rgb` or `#rrggbb`, either case: what a request's background colour may be. */
export function isHexColour(value: string): boolean {
  return HEX_COLOUR.test(value)
}

/** `#rgb` or `#rrggbb`, nothing else (no names, no alpha, no rgb()); returns lowercase `#rrggbb`. */
export function parseHexColour(value: string): string {
  if (typeof value !== 'string' || !isHexColour(value))
    throw new PermanentError(
      'invalid_background',
      'A background colour must be a hex colour such as #aabbcc or #abc',
    )
  const hex = value.slice(1).toLowerCase()
  if (hex.length === 6) return `#${hex}`
  return `#${[...hex].map((c) => c + c).join('')}`
}

/** Hue in degrees (any value, wrapped), saturation and lightness in 0..1 → `#rrggbb`. */
export function hslToHex(hue: number, saturation: number, lightness: number): string {
  const h = (((hue % 360) + 360) % 360) / 360
  const s = clamp01(saturation)
  const l = clamp01(lightness)
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s
  const p = 2 * l - q
  const channel = (t: number) => {
    const u = t < 0 ? t + 1 : t > 1 ? t - 1 : t
    const v =
      u < 1 / 6
        ? p + (q - p) * 6 * u
        : u < 1 / 2
          ? q
          : u < 2 / 3
            ? p + (q - p) * (2 / 3 - u) * 6
            : p
    return Math.round(v * 255)
      .toString(16)
      .padStart(2, '0')
  }
  return `#${channel(h + 1 / 3)}${channel(h)}${channel(h - 1 / 3)}`
}

function clamp01(value: number): number {
  return Math.min(1, Math.max(0, value))
}
