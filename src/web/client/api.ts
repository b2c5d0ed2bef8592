/**
 * fetch() against the REST API: the bearer token from the session, JSON in
 * and out, and API.md's error shape turned into an ApiError. The token lives
 * in sessionStorage (gone when the tab closes) and never in a URL.
 */
const TOKEN_KEY = 'atelier.token'

export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  save: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown,
    /** Seconds, from Retry-After (429, 503). */
    readonly retryAfter: number | undefined,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

/** fetch() itself failed: offline, DNS, connection refused. */
export class NetworkError extends Error {
  override name = 'NetworkError'
}

/** `form`: a multipart body (the browser sets its boundary); otherwise `body` goes as JSON. */
type Options = { body?: unknown; form?: FormData; idempotencyKey?: string }

export async function api<T>(method: string, path: string, options: Options = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  const token = session.token()
  if (token) headers.authorization = `Bearer ${token}`
  if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey
  let body: string | FormData | undefined
  if (options.form) body = options.form
  else if (options.body !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  let res: Response
  try {
    res = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store' })
  } catch (cause) {
    throw new NetworkError('network request failed', { cause })
  }
  const text = await res.text()
  let json: unknown
  try {
    json = text ? JSON.parse(text) : undefined
  } catch {
    json = undefined
  }
  if (res.ok) return json as T
  const error = (json as { error?: { code?: string; message?: string; details?: unknown } })?.error
  const retry = Number(res.headers.get('retry-after'))
  throw new ApiError(
    res.status,
    error?.code ?? 'http_error',
    error?.message ?? `HTTP ${res.status}`,
    error?.details,
    Number.isFinite(retry) && retry > 0 ? retry : undefined,
  )
}

export const get = <T>(path: string) => api<T>('GET', path)

/** A UUID for Idempotency-Key; crypto.randomUUID needs a secure context, this does not. */
export function newKey(): string {
  if (typeof crypto.randomUUID === 'function' && isSecureContext) return crypto.randomUUID()
  const b = crypto.getRandomValues(new Uint8Array(16))
  b[6] = (b[6]! & 0x0f) | 0x40
  b[8] = (b[8]! & 0x3f) | 0x80
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
