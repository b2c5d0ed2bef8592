import type { Config } from '../config/config'
import type { EventLog } from '../events/event'
import type { Logger } from '../obs/logger'
import { makeGateway } from '../realtime/gateway'
import type { Authenticator } from '../users/principals'
import type { Foundation } from './foundation'

export type RealtimeOverrides = {
  /** Time a socket has for its auth message (default 5000 ms, API.md); tests shorten it. */
  authTimeoutMs?: number
  /** The clock token expiries are timed by (default Date.now); tests move it. */
  now?: () => number
}

/** The realtime room: the WebSocket gateway over the event log. */
export function composeGateway(
  f: Foundation,
  config: Config,
  log: Logger,
  overrides: RealtimeOverrides,
  deps: { events: EventLog; principals: Pick<Authenticator, 'verify'> },
) {
  const gateway = makeGateway({
    events: deps.events,
    tokens: deps.principals,
    instanceId: config.instanceId,
    log: log.child({ room: 'realtime' }),
    metrics: f.metrics,
    sendBufferBytes: config.WS_SEND_BUFFER_BYTES,
    maxSocketsPerUser: config.WS_MAX_SOCKETS_PER_USER,
    authTimeoutMs: overrides.authTimeoutMs,
    now: overrides.now,
  })
  f.lifecycle.onDrain('sockets', gateway.drain)
  f.lifecycle.onClose('gateway', gateway.close)
  return gateway
}
