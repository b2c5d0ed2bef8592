/**
 * Deterministic randomness for pictures: a 32-bit seed from text (the first
 * four bytes of its SHA-256) and mulberry32 over it, so the same input draws
 * the same picture on every instance, in every run, on every platform.
 */
export type Random = {
  /** A float in [0, 1). */
  next(): number
  /** A float in [min, max). */
  between(min: number, max: number): number
  /** An integer in [min, max], both ends included. */
  int(min: number, max: number): number
  pick<T>(items: readonly T[]): T
}

export function seedFrom(...parts: Array<string | number>): number {
  const hasher = new Bun.CryptoHasher('sha256')
  // a separator byte, so ('ab', 'c') and ('a', 'bc') seed differently
  for (const part of parts) hasher.update(String(part)).update('\u0000')
  return hasher.digest().readUInt32BE(0)
}

export function makeRandom(seed: number): Random {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    between: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor((max - min + 1) * next()),
    pick(items) {
      if (items.length === 0) throw new Error('pick from an empty list')
      return items[Math.floor(items.length * next())] as (typeof items)[number]
    },
  }
}
