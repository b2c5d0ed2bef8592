import type { ValidationIssue } from '../errors'

/**
 * API.md's prompt rules: 3..500 characters, at most 100 words, no HTML tags
 * or script URLs, no character repeated 10+ times in a row. They apply to
 * what the renderer would see: after NFC and after removing format
 * characters (Unicode Cf: zero-width spaces and joiners, bidi marks, soft
 * hyphens), which are invisible and would otherwise split a repeat, pad a
 * prompt of nothing to three "characters" or hide `java\u200bscript:`.
 * Control characters (Cc: tabs, newlines, ESC of ANSI sequences) are
 * refused outright; a plain space is the only separator. Returns the
 * cleaned prompt, or the issues at `path`.
 */
const HTML_TAG = /<\s*\/?\s*[a-z!][^>]*>/i
const SCRIPT_URL = /\b(?:javascript|vbscript|data)\s*:/i
const REPEATED = /(.)\1{9,}/su
// control characters, and the Unicode line and paragraph separators: a prompt is one line
const CONTROL = /[\p{Cc}\u2028\u2029]/u
const FORMAT = /\p{Cf}/gu

export function checkPrompt(
  raw: string,
  path: string,
): { prompt: string; issues: ValidationIssue[] } {
  const issues: ValidationIssue[] = []
  if (CONTROL.test(raw))
    issues.push({ path, message: 'Control characters (tabs, newlines, escapes) are not allowed' })
  // NFC again after the removal: a format character may have stood between two that compose
  const prompt = raw.normalize('NFC').replace(FORMAT, '').normalize('NFC').trim()
  const length = [...prompt].length
  if (length < 3 || length > 500)
    issues.push({ path, message: 'Expected 3 to 500 characters after normalization' })
  if (prompt.split(/\s+/u).filter(Boolean).length > 100)
    issues.push({ path, message: 'Expected at most 100 words' })
  if (HTML_TAG.test(prompt)) issues.push({ path, message: 'HTML tags are not allowed' })
  if (SCRIPT_URL.test(prompt)) issues.push({ path, message: 'Script URLs are not allowed' })
  if (REPEATED.test(prompt))
    issues.push({ path, message: 'No character may repeat 10 or more times in a row' })
  return { prompt, issues }
}
