/**
 * The path and query of a request's URL, read without `new URL`: Bun hands a
 * request without a usable Host (HTTP/1.0 without one, `Host: a b`, an empty
 * one) its bare path as `request.url`, which `new URL` refuses, and one such
 * request answered 500 on every route, `/health/live` included. Routing does
 * not need the host, so nothing here does either.
 */
export function pathOf(url: string): string {
  const scheme = url.indexOf('://')
  const start = url.startsWith('/') ? 0 : scheme < 0 ? -1 : url.indexOf('/', scheme + 3)
  if (start < 0) return '/'
  const end = url.search(/[?#]/)
  return end < start ? url.slice(start) : url.slice(start, end)
}

/** The query string's parameters (empty without one), as `new URL(url).searchParams` would give. */
export function searchParamsOf(url: string): URLSearchParams {
  const at = url.indexOf('?')
  const hash = url.indexOf('#')
  if (at < 0 || (hash >= 0 && hash < at)) return new URLSearchParams()
  return new URLSearchParams(url.slice(at + 1, hash < 0 ? undefined : hash))
}
