import type { ValidationIssue } from '../errors'

/**
 * API.md's prompt rules, applied after NFC normalization: 3..500 characters,
 * at most 100 words, no HTML tags or script URLs, no character repeated 10+
 * times in a row. Returns the normalized prompt, or the issues at `path`.
 */
const HTML_TAG = /<\s*\/?\s*[a-z!][^>]*>/i
const SCRIPT_URL = /\b(?:javascript|vbscript|data)\s*:/i
const REPEATED = /(.)\1{9,}/su

export function checkPrompt(
  raw: string,
  path: string,
): { prompt: string; issues: ValidationIssue[] } {
  const prompt = raw.normalize('NFC').trim()
  const issues: ValidationIssue[] = []
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
