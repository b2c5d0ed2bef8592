import { describe, expect, it } from 'bun:test'
import fc from 'fast-check'
import { SAFE_TEXT_PATTERN, isSafeText } from '../../src/http/text'

/**
 * The text rule is a pattern (so the OpenAPI document shows it), searched for
 * a violation rather than looped over code units (its cost: README, API
 * notes). It must say exactly what the rule says: no U+0000, no unpaired
 * surrogate, which the platform tells on its own.
 */
const rule = (s: string) => !s.includes('\u0000') && s.isWellFormed()

// strings built of the code units that matter, so surrogates meet in every order
const units = fc.constantFrom(
  'a',
  'é',
  '\u0000',
  '\uD800',
  '\uDBFF',
  '\uDC00',
  '\uDFFF',
  '\uFFFF',
  ' ',
)
const texts = fc.array(units, { maxLength: 12 }).map((parts) => parts.join(''))

describe('the text rule', () => {
  it('accepts exactly the strings without U+0000 or an unpaired surrogate', () => {
    fc.assert(
      fc.property(fc.oneof(texts, fc.string({ unit: 'binary' })), (s) => {
        expect(isSafeText(s)).toBe(rule(s))
        expect(new RegExp(SAFE_TEXT_PATTERN).test(s)).toBe(rule(s))
      }),
      { numRuns: 5000 },
    )
  })

  it('judges a long string by what it holds anywhere in it', () => {
    const long = 'p'.repeat(1_000_000)
    expect(isSafeText(long)).toBe(true)
    expect(isSafeText(`${long}\uD800`)).toBe(false)
    expect(isSafeText(`\uDC00${long}`)).toBe(false)
    expect(isSafeText(`${long}\u0000${long}`)).toBe(false)
    expect(isSafeText('\uD83D\uDE00'.repeat(100_000))).toBe(true)
  })
})
