import type { Server } from 'bun'

/** The caller's address: the proxy's header when TRUST_PROXY is on, else the socket's. */
export function clientIp(
  request: Request,
  server: Server<unknown> | null,
  trustProxy: boolean,
): string {
  if (trustProxy) {
    const fly = request.headers.get('fly-client-ip')
    if (fly) return fly.trim()
    const forwarded = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim()
    if (forwarded) return forwarded
  }
  return server?.requestIP(request)?.address ?? 'unknown'
}
