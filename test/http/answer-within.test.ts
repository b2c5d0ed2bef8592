import { describe, expect, it } from 'bun:test'
import { ABORT_GRACE_MS } from '../../src/actors/actor-system'
import { loadConfig } from '../../src/config/config'
import { serveOptions } from '../../src/server'

/**
 * Bun ends a connection whose handler has not answered within Bun.serve's
 * idleTimeout (10 s by default) with no response at all. A request may take
 * longer than that before it answers 503 (an actor batch runs up to
 * ACTOR_BATCH_TIMEOUT_MS, 20 s, plus its abort grace), so the listener keeps
 * connections open past every such deadline: the client gets the 503.
 */
describe('the listener', () => {
  it.each([
    ['the defaults', {}],
    ['long deadlines', { ACTOR_BATCH_TIMEOUT_MS: '60000', DB_STATEMENT_TIMEOUT_MS: '90000' }],
    ['a long forward', { ACTOR_FORWARD_TIMEOUT_MS: '120000' }],
  ])('waits for the slowest answer a request may get, with %s', (_, env) => {
    const config = loadConfig(env)
    const idleMs = serveOptions(config).idleTimeout * 1000
    expect(idleMs).toBeGreaterThan(config.ACTOR_BATCH_TIMEOUT_MS + ABORT_GRACE_MS)
    expect(idleMs).toBeGreaterThan(config.DB_STATEMENT_TIMEOUT_MS)
    expect(idleMs).toBeGreaterThan(config.ACTOR_FORWARD_TIMEOUT_MS ?? 0)
    expect(idleMs).toBeLessThanOrEqual(255_000) // Bun's maximum
  })
})
