/**
 * The browser-origin allowlist for WebSocket upgrades (ALLOWED_ORIGINS).
 * Entries are exact origins; outside production (config refuses wildcards
 * there) a `*` matches one host label or port, e.g. `http://localhost:*`.
 * A request without Origin is not from a browser page and is allowed.
 */
export function makeOriginCheck(allowed: readonly string[]) {
  const exact = new Set<string>()
  const patterns: RegExp[] = []
  for (const entry of allowed) {
    const origin = entry.replace(/\/+$/, '').toLowerCase()
    if (!origin.includes('*')) exact.add(origin)
    else
      patterns.push(
        new RegExp(
          `^${origin
            .split('*')
            .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('[^./:]+')}$`,
        ),
      )
  }
  return (origin: string | null): boolean => {
    if (origin === null) return true
    const o = origin.toLowerCase()
    return exact.has(o) || patterns.some((p) => p.test(o))
  }
}
