/** Longest wait a provider can ask for; beyond it the item's own deadline should decide. */
export const MAX_RETRY_AFTER_MS = 3_600_000

/**
 * A `Retry-After` header in milliseconds from now: delay-seconds (`120`) or
 * an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`); a date in the past is 0.
 * Undefined when absent or unreadable; capped at MAX_RETRY_AFTER_MS.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  const text = value?.trim()
  if (!text) return undefined
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS)
  // an HTTP-date names its weekday and month; this keeps Date.parse off strings like "1.5"
  const at = /[a-z]{3}/i.test(text) ? Date.parse(text) : Number.NaN
  if (Number.isNaN(at)) return undefined
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS)
}
