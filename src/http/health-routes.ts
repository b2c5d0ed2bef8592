import { Elysia, t } from 'elysia'
import { Unavailable } from '../errors'
import type { Lifecycle } from '../lifecycle/lifecycle'
import type { Logger } from '../obs/logger'
import { errors } from './schemas'

export type HealthCheck = () => Promise<void>

/**
 * A check's failure in words fit for anyone: `/health` is unauthenticated, so
 * it shows these and nothing else. Any other error (a driver's, naming hosts
 * and ports) shows as "unavailable" and goes to the log.
 */
export class CheckFailed extends Error {}

export type HealthDeps = {
  lifecycle: Lifecycle
  /** Dependency pings by name (postgres, redis); each must answer within CHECK_TIMEOUT_MS. */
  checks: Record<string, HealthCheck>
  log: Logger
  instanceId: string
  region: string | undefined
  version: string
}

const CHECK_TIMEOUT_MS = 2000
const startedAt = Date.now()

type CheckResult = { ok: boolean; latencyMs: number; error?: string }

/** A failing check is logged at most this often: `/health` is public and may be polled hard. */
const LOG_EVERY_MS = 10_000

type FailureLog = (name: string, error: unknown) => void

/** Logs a check's failure, once per LOG_EVERY_MS per check. */
function makeFailureLog(log: Logger): FailureLog {
  const lastLogged = new Map<string, number>()
  return (name, error) => {
    const now = performance.now()
    if (now - (lastLogged.get(name) ?? -Infinity) < LOG_EVERY_MS) return
    lastLogged.set(name, now)
    log.warn({ check: name, err: error }, 'health check failed')
  }
}

async function runCheck(
  name: string,
  check: HealthCheck,
  logFailure: FailureLog,
): Promise<CheckResult> {
  const t0 = performance.now()
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      check(),
      new Promise(
        (_, reject) =>
          (timer = setTimeout(() => reject(new CheckFailed('timed out')), CHECK_TIMEOUT_MS)),
      ),
    ])
    return { ok: true, latencyMs: Math.round(performance.now() - t0) }
  } catch (error) {
    if (!(error instanceof CheckFailed)) logFailure(name, error)
    return {
      ok: false,
      latencyMs: Math.round(performance.now() - t0),
      error: error instanceof CheckFailed ? error.message : 'unavailable',
    }
  } finally {
    clearTimeout(timer)
  }
}

async function runChecks(checks: Record<string, HealthCheck>, logFailure: FailureLog) {
  const names = Object.keys(checks)
  const results = await Promise.all(names.map((n) => runCheck(n, checks[n]!, logFailure)))
  return Object.fromEntries(names.map((n, i) => [n, results[i]!]))
}

const Check = t.Object({ ok: t.Boolean(), latencyMs: t.Number(), error: t.Optional(t.String()) })

export function healthRoutes(deps: HealthDeps) {
  const logFailure = makeFailureLog(deps.log)
  return new Elysia({ detail: { tags: ['operations'] } })
    .get('/health/live', () => ({ status: 'live' as const }), {
      detail: { summary: 'The process runs (no dependency checks)' },
      response: { 200: t.Object({ status: t.Literal('live') }) },
    })
    .get(
      '/health/ready',
      async () => {
        if (deps.lifecycle.draining) throw new Unavailable('This instance is draining', 5)
        const checks = await runChecks(deps.checks, logFailure)
        const down = Object.keys(checks).filter((n) => !checks[n]!.ok)
        if (down.length > 0) throw new Unavailable(`Dependency down: ${down.join(', ')}`, 5)
        return { status: 'ready' as const }
      },
      {
        detail: { summary: 'Ready: Postgres (and Redis) answer and the instance is not draining' },
        response: { 200: t.Object({ status: t.Literal('ready') }), ...errors(503) },
      },
    )
    .get(
      '/health',
      async () => {
        const checks = await runChecks(deps.checks, logFailure)
        const ok = Object.values(checks).every((c) => c.ok)
        return {
          status: deps.lifecycle.draining
            ? ('draining' as const)
            : ok
              ? ('ok' as const)
              : ('degraded' as const),
          instance: deps.instanceId,
          region: deps.region ?? null,
          version: deps.version,
          uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
          checks,
        }
      },
      {
        detail: {
          summary: 'Details: each dependency with its latency, instance, region, version, uptime',
          description:
            "Unauthenticated. A failed check's `error` is one of `timed out`, `not connected`, `schema not migrated: run bun run migrate` or `unavailable`; the dependency's own error (which may name hosts and ports) goes to the log, never into this answer.",
        },
        response: {
          200: t.Object({
            status: t.Union([t.Literal('ok'), t.Literal('degraded'), t.Literal('draining')]),
            instance: t.String(),
            region: t.Union([t.String(), t.Null()]),
            version: t.String(),
            uptimeSeconds: t.Number(),
            checks: t.Record(t.String(), Check),
          }),
        },
      },
    )
}
