import type { Logger } from 'pino'
import type { Lifecycle } from './lifecycle'

export type ShutdownDeps = {
  log: Logger
  lifecycle: Lifecycle
  /** The whole drain's budget (DRAIN_TIMEOUT_MS). */
  budgetMs: number
  /** How long readiness is 503 before the listener closes (DRAIN_READY_GRACE_MS). */
  readyGraceMs: number
  /** Closes every pool and client of the instance. */
  close: () => Promise<void>
  /** Bun's server: stop(false) closes the listener, stop(true) cuts what is left. */
  server: { stop(closeActiveConnections?: boolean): unknown }
  exit: (code: number) => void
}

/**
 * The process's way out, for a signal or a fatal error: drain within the
 * budget, close the pools within what is left of it, exit 0 only when both
 * were clean. A second signal exits at once with 1.
 *
 *   running ──signal──▶ draining ──stages done / budget spent──▶ closing ──▶ exited
 */
export function makeShutdown(deps: ShutdownDeps) {
  const { log } = deps
  let stopping = false
  return async function shutdown(signal: string, exitCode = 0) {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      return deps.exit(1)
    }
    stopping = true
    const startedAt = Date.now()
    log.info({ signal, budgetMs: deps.budgetMs }, 'draining')
    // readiness is 503 at once; the listener stays open DRAIN_READY_GRACE_MS so health checks
    // see it, then stop(false) closes it and lets open requests finish; it is not awaited
    // because it can wait forever on open WebSockets (the sockets stage closes them)
    const drained = await deps.lifecycle.drain(
      deps.budgetMs,
      () => void deps.server.stop(false),
      deps.readyGraceMs,
    )
    // closing pools is bounded too: a pool stuck on a dead dependency must not hold the exit
    const left = Math.max(1000, deps.budgetMs - (Date.now() - startedAt))
    const closed = await Promise.race([
      deps.close().then(
        () => true,
        (err) => (log.error({ err }, 'closing pools failed'), false),
      ),
      Bun.sleep(left).then(() => (log.error({ ms: left }, 'closing pools ran out of time'), false)),
    ])
    deps.server.stop(true)
    const clean = drained && closed && exitCode === 0
    log.info({ clean, ms: Date.now() - startedAt }, 'drained')
    deps.exit(clean ? 0 : exitCode || 1)
  }
}
