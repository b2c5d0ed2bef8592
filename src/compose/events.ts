import type { Config } from '../config/config'
import { makeEventLog } from '../events/event-log'
import type { Outbox } from '../events/outbox'
import { lastEventId, writeEvents } from '../events/outbox-repository'
import { makeOutboxRelay } from '../events/outbox-relay'
import type { Logger } from '../obs/logger'
import type { Foundation } from './foundation'

/**
 * The events room: the event log (Redis streams, or memory when embedded),
 * the outbox the user actor writes events into in each transaction, and the
 * relay that moves them to the log. Made before the actors, so the outbox's
 * `committed` wakes the relay directly.
 */
export async function composeEvents(f: Foundation, config: Config, log: Logger) {
  const events = await makeEventLog({
    redis: f.redis,
    keys: f.keys,
    history: config.EVENT_HISTORY,
    ttlSeconds: config.EVENT_TTL_SECONDS,
    log,
    metrics: f.metrics,
    fallbackBaseline: (userId) => lastEventId(f.database.db, userId),
  })
  f.lifecycle.onClose('event log', events.close)
  const relay = makeOutboxRelay({
    db: f.database.db,
    events,
    log: log.child({ room: 'events' }),
    metrics: f.metrics,
    pollMs: config.OUTBOX_POLL_MS,
    retentionSeconds: config.OUTBOX_RETENTION_SECONDS,
    appendTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS * 2,
  })
  f.lifecycle.onClose('outbox relay', relay.close)
  f.lifecycle.onDrain('events', async () => {
    if (!(await relay.flush(Math.floor(config.DRAIN_TIMEOUT_MS / 4))))
      log.warn('events left in the outbox: another instance relays them')
  })
  // what a crashed instance left behind goes out at the first poll (OUTBOX_POLL_MS)
  const outbox: Outbox = { write: writeEvents, committed: () => relay.wake() }
  return { events, relay, outbox }
}
