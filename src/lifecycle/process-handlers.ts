import type { Logger } from 'pino'
import { toError } from '../errors'
import type { Metrics } from '../obs/metrics'

/**
 * Process-level last resorts, installed by the composition root only.
 *  - An unhandled rejection is a bug at one call site (a promise nobody
 *    awaited), not a broken process: it is logged and counted
 *    (`process_unhandled_rejections_total`), and the process keeps serving.
 *    Without this Bun exits 1, which is how one failed requeue during a
 *    Postgres restart used to take every instance down.
 *  - An uncaught exception may have left any state half-changed: the
 *    instance drains (so held work is handed back) and exits non-zero.
 */
export type ProcessHandlersDeps = {
  log: Logger
  metrics?: Metrics
  /** Drains and exits with the given code; called once. */
  fatal: (reason: string, exitCode: number) => void
}

/** Installs both handlers; returns the function that removes them. */
export function installProcessHandlers(deps: ProcessHandlersDeps) {
  const { log } = deps
  const rejections = deps.metrics?.counter(
    'process_unhandled_rejections_total',
    'Promises rejected with no handler (logged, not fatal)',
  )
  const onRejection = (reason: unknown) => {
    rejections?.inc()
    log.error({ err: toError(reason) }, 'unhandled rejection')
  }
  let failed = false
  const onException = (error: unknown) => {
    log.fatal({ err: toError(error) }, 'uncaught exception: draining, then exiting 1')
    if (failed) return
    failed = true
    deps.fatal('uncaughtException', 1)
  }
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  return () => {
    process.off('unhandledRejection', onRejection)
    process.off('uncaughtException', onException)
  }
}
