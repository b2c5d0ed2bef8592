/**
 * The one LIKE escape: `%`, `_` and `\` in user text match themselves. Use the
 * result as a bound parameter with `like`/`ilike` (Postgres's default escape
 * character is `\`, and standard_conforming_strings keeps it literal in the
 * bound value), e.g. `name ilike $1` with `$1 = containsPattern(q)`.
 */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`)
}

/** A pattern that matches any text containing `text` literally. */
export function containsPattern(text: string): string {
  return `%${escapeLike(text)}%`
}
