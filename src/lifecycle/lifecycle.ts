import type { Logger } from 'pino'

/**
 * Readiness and drain for one instance.
 *
 * States: serving → draining → drained.
 *   serving:  /health/ready is 200; requests are counted in and out.
 *   draining: ready is 503 at once; the listener stays open for `graceMs`
 *             (DRAIN_READY_GRACE_MS) so a balancer's health check sees the 503
 *             and stops routing here, while requests still arriving are served;
 *             then the listener closes, we wait for in-flight requests, then
 *             run the registered stages (rooms register them at composition:
 *             actors, renderer pool, sockets, …; the order is below), each
 *             bounded by what is left of the budget; then pools close. A stage
 *             that fails or passes the budget makes the drain unclean (exit 1).
 *   drained:  every stage has run (or the budget ran out); the caller exits.
 *
 * Drain stages run in the order `drainOrder` names them (one list, in the
 * composition root; stages it does not name run after, in registration
 * order). Closers run in the reverse of their registration: each part of the
 * instance registers its closer where it is made, after what it uses, so it
 * closes before them by construction.
 */
export type DrainStage = { name: string; run: () => Promise<void> }

export type Lifecycle = ReturnType<typeof makeLifecycle>

export type LifecycleDeps = {
  /** The drain stages by name, in the order they run. */
  drainOrder?: readonly string[]
}

/** What drain() works on: the stages in their order, and the requests still in flight. */
type Drainable = {
  log: Logger
  stages: DrainStage[]
  inflight: number
  idleWaiters: (() => void)[]
}

export function makeLifecycle(log: Logger, deps: LifecycleDeps = {}) {
  const closers: { name: string; close: () => unknown }[] = []
  const rank = (name: string) => {
    const i = deps.drainOrder?.indexOf(name) ?? -1
    return i < 0 ? Number.MAX_SAFE_INTEGER : i
  }
  const d: Drainable = { log, stages: [], inflight: 0, idleWaiters: [] }
  let draining = false

  return {
    get draining() {
      return draining
    },
    get inflight() {
      return d.inflight
    },
    requestStarted() {
      d.inflight++
    },
    requestEnded() {
      d.inflight = Math.max(0, d.inflight - 1)
      if (d.inflight === 0) {
        for (const wake of d.idleWaiters) wake()
        d.idleWaiters = []
      }
    },
    /** Adds a stage: in `drainOrder`'s place, or after those it names, in registration order. */
    onDrain(name: string, run: () => Promise<void>) {
      const at = d.stages.findIndex((s) => rank(s.name) > rank(name))
      d.stages.splice(at < 0 ? d.stages.length : at, 0, { name, run })
    },
    /** Adds a closer; `close()` runs them last registered first. */
    onClose(name: string, close: () => unknown) {
      closers.push({ name, close })
    },
    /**
     * Closes every registered part, last registered first, each awaited; one
     * that fails is logged and the rest still close (the first failure is
     * rethrown at the end).
     */
    async close() {
      let failure: unknown
      for (const { name, close } of closers.splice(0).reverse()) {
        try {
          await close()
        } catch (err) {
          log.error({ err, part: name }, 'closing failed')
          failure ??= err
        }
      }
      if (failure !== undefined) throw failure
    },
    /**
     * Runs the drain within `budgetMs`. Resolves true when every stage finished
     * in time, false when the budget cut it short (the caller exits non-zero).
     */
    drain(budgetMs: number, before?: () => void, graceMs = 0): Promise<boolean> {
      draining = true
      return drain(d, budgetMs, before, graceMs)
    },
  }
}

async function drain(d: Drainable, budgetMs: number, before?: () => void, graceMs = 0) {
  const { log } = d
  const deadline = Date.now() + budgetMs
  const left = () => Math.max(0, deadline - Date.now())
  // a deliberate window, not a wait for an event: health checks poll on their own period
  if (graceMs > 0) await Bun.sleep(Math.min(graceMs, budgetMs / 2))
  before?.()
  let clean = true
  const idle =
    d.inflight === 0 ? Promise.resolve() : new Promise<void>((r) => d.idleWaiters.push(r))
  if (!(await within(idle, left()))) {
    log.warn({ inflight: d.inflight }, 'drain budget ran out waiting for in-flight requests')
    return false
  }
  for (const stage of d.stages) {
    const started = Date.now()
    const finished = await within(
      stage.run().catch((err) => {
        clean = false
        log.error({ err, stage: stage.name }, 'drain stage failed')
      }),
      left(),
    )
    if (!finished) {
      log.error({ stage: stage.name, budgetMs }, 'drain budget ran out')
      return false
    }
    log.info({ stage: stage.name, ms: Date.now() - started }, 'drain stage done')
  }
  return clean
}

async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))
  try {
    return await Promise.race([work.then(() => true as const), timeout])
  } finally {
    clearTimeout(timer)
  }
}
