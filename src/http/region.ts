import { Unavailable } from '../errors'
import { pathOf } from './url'

/**
 * Fly.io multi-region at the edge, decided from the method, the path and the
 * headers alone, before a byte of the body is read:
 *
 *  - outside PRIMARY_REGION a mutating request (any method but GET, HEAD,
 *    OPTIONS, whatever the path, so a future write route cannot slip through)
 *    is answered at once with an empty 409 carrying `fly-replay: region=<primary>`;
 *    Fly's proxy replays the request there (it keeps bodies up to 1 MB for it);
 *  - such a request that already carries `fly-replay-src` was replayed here by
 *    mistake (a misconfigured PRIMARY_REGION): 503 `unavailable`, never a loop;
 *  - read-your-writes: the primary answers every write with a cookie holding
 *    the write's time; for `readYourWritesMs` after it, that client's /v1 reads
 *    are replayed to the primary too, so a replica that lags never hides a write
 *    from its author. A replayed read is served where it lands (no loop); the
 *    WebSocket upgrade is served everywhere (its events come from Redis).
 *
 * The answer is thrown as a FlyReplay, so it takes the error path like every
 * refusal at the edge (a Response returned from onRequest would skip Elysia's
 * afterResponse hooks: no log line, and an in-flight count that never drops).
 *
 * Fly does not fix the status of a replay answer: the proxy acts on the header.
 * 409 is what Fly's own fly-ruby middleware sends, and it is not a 2xx, so a
 * caller that reaches the instance without Fly's proxy never mistakes it for
 * a write that happened.
 */
export type RegionEdgeDeps = {
  /** PRIMARY_REGION; unset means one region: nothing here applies. */
  primaryRegion: string | undefined
  /** FLY_REGION of this instance. */
  region: string | undefined
  /** Reads replayed to the primary after a write, in ms; 0 turns it off. */
  readYourWritesMs: number
  now?: () => number
}

/** Throws FlyReplay or Unavailable when the request is not this region's; sets the write cookie. */
export type RegionEdge = (request: Request, set: { headers: Record<string, unknown> }) => void

/** The cookie the primary sets on writes: the write's time in epoch ms. */
export const LAST_WRITE_COOKIE = 'atelier_last_write'
export const REPLAY_STATUS = 409

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const COOKIE_VALUE = new RegExp(`(?:^|;\\s*)${LAST_WRITE_COOKIE}=(\\d{1,16})(?:;|$)`)

export function makeRegionEdge(deps: RegionEdgeDeps): RegionEdge | undefined {
  const primary = deps.primaryRegion
  if (!primary) return undefined
  const now = deps.now ?? Date.now
  const windowMs = deps.readYourWritesMs
  if (deps.region === primary)
    return (request, set) => {
      if (SAFE_METHODS.has(request.method) || windowMs === 0) return
      // set before the handler runs: a write that fails still costs only a few replayed reads
      set.headers['set-cookie'] =
        `${LAST_WRITE_COOKIE}=${now()}; Path=/; Max-Age=${Math.ceil(windowMs / 1000)}; HttpOnly; SameSite=Lax`
    }

  return (request) => {
    const replayed = request.headers.has('fly-replay-src')
    if (!SAFE_METHODS.has(request.method)) {
      if (replayed)
        throw new Unavailable(
          `This write was replayed to region ${deps.region ?? 'unknown'}, which does not take writes; the primary region ${primary} is unavailable, retry shortly`,
          2,
        )
      throw new FlyReplay(primary)
    }
    if (replayed || windowMs === 0 || request.method === 'OPTIONS') return
    const path = pathOf(request.url)
    if (!path.startsWith('/v1/') || path === '/v1/ws') return
    const written = lastWrite(request.headers.get('cookie'))
    if (written === undefined) return
    const age = now() - written
    // a small negative age is clock skew between regions; a far-future value is not ours
    if (age < windowMs && age > -windowMs) throw new FlyReplay(primary)
  }
}

function lastWrite(cookie: string | null): number | undefined {
  const match = cookie ? COOKIE_VALUE.exec(cookie) : null
  return match ? Number(match[1]) : undefined
}

/** Thrown at the edge; app.ts's onError answers it: an empty 409 with `fly-replay`. */
export class FlyReplay extends Error {
  constructor(readonly region: string) {
    super(`replay in ${region}`)
    this.name = 'FlyReplay'
  }

  respond(set: { status?: unknown; headers: Record<string, unknown> }) {
    set.status = REPLAY_STATUS
    set.headers['fly-replay'] = `region=${this.region}`
    return new Response(null, {
      status: REPLAY_STATUS,
      headers: set.headers as Record<string, string>,
    })
  }
}
