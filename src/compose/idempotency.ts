import type { Config } from '../config/config'
import { makeIdempotency } from '../idempotency/idempotency'
import type { Logger } from '../obs/logger'
import type { Foundation } from './foundation'

/** Idempotency-Key records; outside the Fly.io primary region nothing is written, so nothing is swept. */
export function composeIdempotency(f: Foundation, config: Config, log: Logger) {
  const idempotency = makeIdempotency({
    db: f.database.db,
    log: log.child({ room: 'idempotency' }),
    sweeps: config.isPrimaryRegion,
    holdMs: config.IDEMPOTENCY_HOLD_MS,
  })
  f.lifecycle.onClose('idempotency', idempotency.close)
  return idempotency
}
